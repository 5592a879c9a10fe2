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
from nlp.text import normalize_text, segment_for_features


@dataclass
class RetrainResult:
    version: str
    promoted: bool
    candidate_scores: dict[str, float]
    current_scores: dict[str, float] | None
    current_version: str | None
    n_corrections: int
    reason: str
    corrections_by_genre: dict[str, int] | None = None

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
    def add(
        self, model: Any, scores: dict[str, float], promote: bool, info: dict[str, Any]
    ) -> None:
        save_model(model, self.model_path(model.version))
        state = self._read()
        state["history"].append(
            {
                "version": model.version,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "reference_scores": scores,
                "promoted": promote,
                **info,
            }
        )
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
            raise ModelNotFoundError(
                f"registry {self.root} has no earlier promoted model to roll back to"
            )
        gone = stack.pop()
        state["current"] = stack[-1]
        state["history"].append(
            {
                "version": gone,
                "event": "rolled_back",
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        )
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
        a.texts + b.texts,
        a.segs + b.segs,
        np.concatenate([a.labels, b.labels]),
        np.concatenate([a.topics, b.topics]),
        (a.ids or []) + (b.ids or []),
        np.concatenate([a.weights, b.weights]),
    )


def correction_items(
    corrections: Sequence[dict[str, Any]], max_chars: int = 600
) -> list[dict[str, Any]]:
    """Corrections → training items in the news-dev form (headline + start of the lead)."""
    out = []
    for c in corrections:
        if c.get("label") not in LABELS:
            continue
        head = ". ".join(
            x.strip().rstrip(".")
            for x in (c.get("title", ""), c.get("lead", ""))
            if x and x.strip()
        )
        body = c.get("text", "") or ""
        text = (head + ". " + body) if head else body
        out.append(
            {
                "id": f"feedback-{c.get('feedback_id', c.get('article_id'))}",
                "text": text[:max_chars],
                "label": c["label"],
                "topic": "",
            }
        )
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

    The format-1 news model has one head, trained on news: only the corrections of articles
    are used (a post's correction trains the post head of :func:`retrain_genre`).
    The first run also creates the reference baseline (the same recipe without corrections),
    promoted unconditionally, so later candidates always have a current model to beat.
    """
    corrections = [c for c in corrections if (c.get("genre") or "article") == "article"]
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
    train = (
        _concat(base_train, _corpus_from(items, weight=correction_weight)) if items else base_train
    )
    stamp = version or dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
    cand = train_model(train, unl, config, version=stamp)
    cand_scores = evaluate(cand, ref)
    promote = cand_scores["macro_f1"] >= current_scores["macro_f1"] - tolerance
    reason = (
        f"candidate macro-F1 {cand_scores['macro_f1']:.4f} vs current {current_scores['macro_f1']:.4f} "
        f"on the frozen reference set ({len(ref_ids)} items): "
        + ("promoted" if promote else "refused (worse)")
    )
    registry.add(
        cand,
        cand_scores,
        promote=promote,
        info={**info, "n_corrections": len(items), "reason": reason},
    )
    return RetrainResult(
        cand.version, promote, cand_scores, current_scores, cur, len(items), reason
    )


# ------------------------------------------------------------------------------ genre models


def evaluate_genre(model: Any, data: Any, genre: str) -> dict[str, float]:
    """Scores of ``model``'s ``genre`` head on ``data`` (a :class:`nlp.heads.Data`): the
    encoder head when ``data`` carries encoder rows, else the TF-IDF head; a format-1 model
    scores every genre with its one head. The same function scores candidate and current."""
    from nlp.heads import GenreModel
    from nlp.sentiment import scores

    if isinstance(model, GenreModel):
        head = model.head(genre, data.emb is not None)
        p, _ = head.proba(data.texts, data.segs, data.emb if head.uses_encoder else None)
    else:
        p, _, _ = model.predict_units(data.texts, data.segs)
    return scores(np.asarray(data.labels), np.array(LABELS)[p.argmax(axis=1)])


def retrain_genre(
    registry: ModelRegistry,
    data_dir: Path,
    corrections: Sequence[dict[str, Any]],
    state_dir: Path | None = None,
    tolerance: float = 0.0,
    correction_weight: float = 2.0,
    version: str | None = None,
    echo: Any = print,
    base_config: ModelConfig | None = None,
    use_encoder: bool | None = None,
) -> RetrainResult:
    """Retrain the genre model with staff corrections; promote only if no genre gets worse.

    Corrections carry ``genre`` (``article`` when absent): each genre's heads are retrained on
    their data minus that genre's frozen reference set (news-dev: the hash-based 20 % of
    :func:`frozen_reference_ids`; posts: the same rule over the VLSP 2016 items the post head
    trains on) plus its corrections (weight 2); a genre without corrections keeps the heads of
    the reference baseline. Candidate and current model are scored now, by the same function
    (:func:`evaluate_genre`), on both reference sets; the candidate is promoted if neither
    genre's macro-F1 drops by more than ``tolerance``. The first run trains the baseline (same
    recipe, no corrections) and promotes it.

    ``use_encoder``: False trains and scores the TF-IDF heads only; None reads
    ``IOC_NLP_ENCODER`` (:class:`nlp.settings.NLPSettings`).
    """
    from nlp.encoder import load_encoder
    from nlp.heads import Data, GenreModel
    from nlp.sentiment import TOPICS
    from nlp.training import (
        ARTICLE_GRID,
        POST_GRID,
        POST_SETS,
        build_genre_model,
        fit_genre_heads,
        labelled_data,
        news_base_model,
    )

    cache_dir = Path(state_dir) / "nlp-cache" if state_dir else None
    encoder, why = load_encoder(state_dir, cache_entries=2_000_000, enabled=use_encoder)
    if encoder is None:
        echo(f"the encoder cannot run here ({why}): TF-IDF-only heads")
    unknown = sorted({str(c.get("genre")) for c in corrections} - {"article", "post", "None"})
    if unknown:
        raise ValueError(f"corrections of unknown genre {', '.join(unknown)[:80]}: article or post")
    news, rows = labelled_data(data_dir, "news-dev", encoder, cache_dir)
    ref_news = set(frozen_reference_ids([{"id": i} for i in rows.ids]))
    is_ref = np.array([i in ref_news for i in rows.ids])
    news_train, news_ref = news.subset(np.flatnonzero(~is_ref)), news.subset(np.flatnonzero(is_ref))
    topics_all = rows.topics
    post_parts, post_ref_parts = [], []
    for spec in POST_SETS.values():
        d, prow = labelled_data(data_dir, spec, encoder, cache_dir)
        ref_p = (
            set(frozen_reference_ids([{"id": i} for i in prow.ids]))
            if spec.startswith("vlsp2016")
            else set()
        )
        m = np.array([i in ref_p for i in prow.ids])
        post_parts.append(d.subset(np.flatnonzero(~m)))
        if m.any():
            post_ref_parts.append(d.subset(np.flatnonzero(m)))
    post_train = Data.concat(post_parts)
    post_ref = Data.concat(post_ref_parts) if post_ref_parts else Data([], [], np.array([]))
    refs = {"article": news_ref, "post": post_ref}
    info = {
        "reference_ids_sha256": ids_digest(sorted(ref_news)),
        "reference_n": len(ref_news),
        "post_reference_n": len(post_ref.texts),
    }
    base_news = news_base_model(data_dir, cache_dir, echo, base_config)

    def corrections_data(genre: str) -> Data | None:
        items = correction_items([c for c in corrections if (c.get("genre") or "article") == genre])
        if not items:
            return None
        texts = [normalize_text(it["text"]) for it in items]
        return Data(
            texts,
            [segment_for_features(t) for t in texts],
            np.array([it["label"] for it in items]),
            encoder.encode(texts) if encoder is not None else None,
            np.full(len(texts), correction_weight),
        )

    def score_all(model: Any) -> dict[str, dict[str, float]]:
        return {g: evaluate_genre(model, d, g) for g, d in refs.items() if len(d.texts)}

    tmask = np.isin(topics_all, TOPICS) & ~is_ref
    topic_data = news.subset(np.flatnonzero(tmask))
    topic_data.labels = topics_all[tmask]
    name = encoder.name if encoder is not None else None
    max_chars = encoder.encoder.max_chars if encoder is not None else 1000
    cur = registry.current_version
    current = load_model(registry.model_path(cur)) if cur else None
    if current is None or not isinstance(current, GenreModel):
        stamp = version or dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
        echo("training the reference baseline (no corrections) ...")
        current = build_genre_model(
            news_train,
            post_train,
            topic_data,
            base_news,
            f"{stamp}-base",
            name,
            max_chars,
            meta={"baseline": True},
            echo=echo,
        )
        registry.add(
            current, _flat(score_all(current)), promote=True, info={**info, "n_corrections": 0}
        )
        cur = current.version
    current_scores = score_all(current)
    stamp = version or dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
    heads = dict(current.heads)
    n_used = 0
    used: dict[str, int] = {}
    for genre, grid, train in (
        ("article", ARTICLE_GRID, news_train),
        ("post", POST_GRID, post_train),
    ):
        extra = corrections_data(genre)
        used[genre] = 0 if extra is None else len(extra.texts)
        if extra is not None:
            n_used += len(extra.texts)
            heads[genre] = fit_genre_heads(
                grid, Data.concat([train, extra]), base_news, echo=echo, name=genre
            )
    cand = GenreModel(
        version=stamp,
        heads=heads,
        topic=current.topic,
        encoder_name=current.encoder_name,
        headline_weight=current.headline_weight,
        meta={**current.meta, "baseline": False},
    )
    # topics are not corrected here (corrections carry sentiment labels): the candidate keeps
    # the current topic heads
    cand_scores = score_all(cand)
    worse = [
        g
        for g in cand_scores
        if cand_scores[g]["macro_f1"] < current_scores[g]["macro_f1"] - tolerance
    ]
    promote = not worse
    reason = (
        "; ".join(
            f"{g}: {used.get(g, 0)} corrections, candidate macro-F1 {cand_scores[g]['macro_f1']:.4f} "
            f"vs current {current_scores[g]['macro_f1']:.4f}"
            for g in cand_scores
        )
        + f" on the frozen reference sets ({len(news_ref.texts)} news items, {len(post_ref.texts)} posts): "
        + ("promoted" if promote else f"refused (worse on {', '.join(worse)})")
    )
    registry.add(
        cand,
        _flat(cand_scores),
        promote=promote,
        info={
            **info,
            "n_corrections": n_used,
            **{f"n_corrections_{g}": n for g, n in used.items()},
            "reason": reason,
        },
    )
    return RetrainResult(
        cand.version, promote, _flat(cand_scores), _flat(current_scores), cur, n_used, reason, used
    )


def _flat(scores_by_genre: dict[str, dict[str, float]]) -> dict[str, float]:
    """One flat dict: the article scores under their usual keys (the digest and ``--status``
    read ``macro_f1``), every genre's under ``<genre>_<key>``."""
    out: dict[str, float] = dict(scores_by_genre.get("article", {}))
    for g, sc in scores_by_genre.items():
        out.update({f"{g}_{k}": v for k, v in sc.items()})
    return out
