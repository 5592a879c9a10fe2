"""Model registry for retraining with staff corrections: versions, promotion, rollback.

Layout under ``<state_dir>/nlp-models/``::

    registry.json                 {"current": version | null, "history": [entries...]}
    <version>/sentiment-<version>.joblib

A candidate is trained on news-dev minus the frozen reference set, plus the corrections, and
evaluated on the frozen reference set (a fixed, id-hash-based 20 % of news-dev that no
registry model is trained on). It is promoted only if its macro-F1 there is not below the
current model's by more than ``tolerance`` (default 0: "not worse"). Every version is kept,
so ``rollback`` can go back to the previously promoted one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlp.errors import ModelNotFoundError
from nlp.scoring import load_model, save_model
from nlp.sentiment import (
    LABELS,
    Corpus,
    ModelConfig,
    evaluate,
    frozen_reference_ids,
    ids_digest,
    prepare,
    train_model,
)


@dataclass
class RetrainResult:
    version: str
    promoted: bool
    candidate_scores: dict[str, float]
    current_scores: dict[str, float] | None
    current_version: str | None
    n_corrections: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ModelRegistry:
    """Versioned sentiment models in a folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ state
    def _read(self) -> dict[str, Any]:
        p = self.root / "registry.json"
        if not p.exists():
            return {"current": None, "history": []}
        return json.loads(p.read_text(encoding="utf-8"))

    def _write(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "registry.json.tmp"
        tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.root / "registry.json")

    @property
    def current_version(self) -> str | None:
        return self._read()["current"]

    def history(self) -> list[dict[str, Any]]:
        return self._read()["history"]

    def model_path(self, version: str) -> Path:
        return self.root / version / f"sentiment-{version}.joblib"

    def current_model_path(self) -> Path | None:
        v = self.current_version
        return self.model_path(v) if v else None

    def _entry(self, version: str) -> dict[str, Any] | None:
        return next((e for e in self.history() if e["version"] == version), None)

    # ------------------------------------------------------------------ operations
    def add(self, model: Any, scores: dict[str, float], promote: bool, info: dict[str, Any]) -> None:
        save_model(model, self.model_path(model.version))
        state = self._read()
        state["history"].append({
            "version": model.version,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "reference_scores": scores,
            "promoted": promote,
            **info,
        })
        if promote:
            state.setdefault("promoted", []).append(model.version)
            state["current"] = model.version
        self._write(state)

    def rollback(self) -> str:
        """Make the previously promoted version current again; returns it.

        The rolled-back version stays on disk and in the history (marked ``rolled_back``).
        """
        state = self._read()
        stack = state.get("promoted", [])
        if len(stack) < 2:
            raise ModelNotFoundError(f"registry {self.root} has no earlier promoted model to roll back to")
        gone = stack.pop()
        state["current"] = stack[-1]
        state["history"].append({
            "version": gone, "event": "rolled_back",
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        })
        self._write(state)
        return stack[-1]


def _corpus_from(items: Sequence[dict[str, Any]], weight: float = 1.0) -> Corpus:
    texts = [it["text"] for it in items]
    c = prepare(
        texts,
        labels=np.array([it["label"] for it in items]),
        topics=np.array([it.get("topic") or "" for it in items]),
        ids=[str(it.get("id")) for it in items],
    )
    c.weights = np.full(len(items), weight)
    return c


def _concat(a: Corpus, b: Corpus) -> Corpus:
    return Corpus(
        a.texts + b.texts, a.segs + b.segs,
        np.concatenate([a.labels, b.labels]), np.concatenate([a.topics, b.topics]),
        (a.ids or []) + (b.ids or []), np.concatenate([a.weights, b.weights]),
    )


def correction_items(corrections: Sequence[dict[str, Any]], max_chars: int = 600) -> list[dict[str, Any]]:
    """Corrections → training items in the news-dev form (headline + start of the lead)."""
    out = []
    for c in corrections:
        if c.get("label") not in LABELS:
            continue
        head = ". ".join(x.strip().rstrip(".") for x in (c.get("title", ""), c.get("lead", "")) if x and x.strip())
        body = c.get("text", "") or ""
        text = (head + ". " + body) if head else body
        out.append({"id": f"feedback-{c.get('feedback_id', c.get('article_id'))}", "text": text[:max_chars], "label": c["label"], "topic": ""})
    return out


def retrain(
    registry: ModelRegistry,
    labelled: Sequence[dict[str, Any]],
    unlabelled: Sequence[dict[str, Any]],
    corrections: Sequence[dict[str, Any]],
    config: ModelConfig | None = None,
    tolerance: float = 0.0,
    correction_weight: float = 2.0,
    version: str | None = None,
) -> RetrainResult:
    """Train a candidate with the corrections and promote it only if not worse.

    The first run also creates the reference baseline (the same recipe without corrections),
    promoted unconditionally, so later candidates always have a current model to beat.
    """
    ref_ids = set(frozen_reference_ids(labelled))
    train_items = [it for it in labelled if str(it["id"]) not in ref_ids]
    ref_items = [it for it in labelled if str(it["id"]) in ref_ids]
    ref = _corpus_from(ref_items)
    base_train = _corpus_from(train_items)
    unl = prepare([u["text"] for u in unlabelled])
    info = {"reference_ids_sha256": ids_digest(sorted(ref_ids)), "reference_n": len(ref_ids)}

    current_scores = None
    cur = registry.current_version
    if cur is None:
        stamp = version or dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
        base = train_model(base_train, unl, config, version=f"{stamp}-base")
        current_scores = evaluate(base, ref)
        registry.add(base, current_scores, promote=True, info={**info, "n_corrections": 0})
        cur = base.version
    else:
        entry = registry._entry(cur)
        current_scores = entry.get("reference_scores") if entry else None
        if current_scores is None:
            current_scores = evaluate(load_model(registry.model_path(cur)), ref)

    items = correction_items(corrections)
    train = _concat(base_train, _corpus_from(items, weight=correction_weight)) if items else base_train
    stamp = version or dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
    cand = train_model(train, unl, config, version=stamp)
    cand_scores = evaluate(cand, ref)
    promote = cand_scores["macro_f1"] >= current_scores["macro_f1"] - tolerance
    reason = (
        f"candidate macro-F1 {cand_scores['macro_f1']:.4f} vs current {current_scores['macro_f1']:.4f} "
        f"on the frozen reference set ({len(ref_ids)} items): "
        + ("promoted" if promote else "refused (worse)")
    )
    registry.add(cand, cand_scores, promote=promote, info={**info, "n_corrections": len(items), "reason": reason})
    return RetrainResult(cand.version, promote, cand_scores, current_scores, cur, len(items), reason)
