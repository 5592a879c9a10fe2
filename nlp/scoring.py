"""Public scoring API used by the crawler, the API and ``ioc nlp score``.

>>> scorer = load_scorer()                                         # doctest: +SKIP
>>> scorer.score_records([{"id": 1, "title": "Tai nạn...", "text": "..."}])  # doctest: +SKIP

Each record gets ``"sentiment": {"label", "scores", "reasons"}``, ``"topic"``,
``"topic_scores"``, ``"places"`` and ``"model_version"``; or, when it cannot be scored,
``"not_scored": "<reason>"`` (empty, too short, not Vietnamese, unreadable) or
``"error": "<reason>"`` (not a JSON object, text not a string). Scoring is batched: all
units of all records go through the model in one matrix.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

from nlp.errors import ModelLoadError, ModelNotFoundError
from nlp.places import PlaceFinder, load_gazetteer
from nlp.sentiment import LABELS, NewsModel
from nlp.settings import DEFAULT_GAZETTEER, DEFAULT_MODEL_DIR
from nlp.text import (
    normalize_text,
    segment_for_features,
    split_sentences,
    vietnamese_ratio,
    vietnamese_score,
)

log = logging.getLogger(__name__)

MODEL_FORMAT = 1
_VERSION_RE = re.compile(r"sentiment-(.+)\.joblib$")


def default_model_path(model_dir: Path = DEFAULT_MODEL_DIR) -> Path:
    """The newest ``sentiment-<version>.joblib`` shipped in ``model_dir``."""
    files = sorted(Path(model_dir).glob("sentiment-*.joblib"))
    if not files:
        raise ModelNotFoundError(f"no sentiment-*.joblib model in {model_dir}: run `ioc nlp train`")
    return files[-1]


def save_model(model: NewsModel, path: Path) -> Path:
    """Write the model atomically (temp name, then rename), with library versions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": MODEL_FORMAT,
        "model": model,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    tmp = path.with_name(path.name + ".tmp")
    joblib.dump(payload, tmp, compress=("xz", 6))
    tmp.replace(path)
    return path


def load_model(path: Path) -> NewsModel:
    """Load a model file written by :func:`save_model`.

    Raises
    ------
    ModelNotFoundError
        The file does not exist.
    ModelLoadError
        The file is not a model of this format or cannot be unpickled by the installed
        scikit-learn (the version it was saved with is named).
    """
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"sentiment model {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # InconsistentVersionWarning: checked below
            payload = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ModelLoadError(f"sentiment model {path} cannot be loaded: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT or not isinstance(payload.get("model"), NewsModel):
        raise ModelLoadError(f"sentiment model {path} is not an ioc-monitor model file (format {MODEL_FORMAT})")
    saved = str(payload.get("sklearn_version", "?"))
    if saved.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        log.warning("model %s was saved with scikit-learn %s, running %s", path, saved, sklearn.__version__)
    return payload["model"]


@dataclass
class _Prepared:
    index: int
    head: str
    body_sentences: list[str]
    full_text: str
    published: str | None
    truncated: bool


class Scorer:
    """A loaded sentiment/topic model and gazetteer.

    Parameters
    ----------
    model : NewsModel
    places : PlaceFinder or None
    min_chars, max_chars : int
        Texts shorter are "not scored"; longer ones are cut (and flagged ``"truncated"``).
    max_body_sentences : int
        Body sentences scored per article (the first ones; news puts the facts first).
    """

    def __init__(
        self,
        model: NewsModel,
        places: PlaceFinder | None = None,
        min_chars: int = 20,
        max_chars: int = 200_000,
        max_body_sentences: int = 60,
    ) -> None:
        self.model = model
        self.places = places
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.max_body_sentences = max_body_sentences
        self.load_seconds: float | None = None

    @property
    def model_version(self) -> str:
        return f"sentiment-{self.model.version}"

    # ------------------------------------------------------------------ preparation
    def _prepare(self, i: int, rec: Any) -> _Prepared | dict[str, str]:
        if not isinstance(rec, dict):
            return {"error": f"record {i} is not a JSON object"}
        fields = {}
        for key in ("title", "lead", "text"):
            val = rec.get(key)
            if val is None:
                continue
            if not isinstance(val, str):
                return {"error": f"record {i}: field {key!r} is not a string"}
            fields[key] = val
        raw_len = sum(len(v) for v in fields.values())
        if raw_len == 0 or not any(v.strip() for v in fields.values()):
            return {"not_scored": "empty text: no title, lead or text"}
        truncated = False
        for key, val in list(fields.items()):
            if len(val) > self.max_chars:
                fields[key] = val[: self.max_chars]
                truncated = True
        norm = {k: normalize_text(v) for k, v in fields.items()}
        full = "\n".join(norm[k] for k in ("title", "lead", "text") if norm.get(k))
        if len(full) < self.min_chars:
            return {"not_scored": f"text too short ({len(full)} characters, at least {self.min_chars} needed)"}
        if vietnamese_ratio(full) < 0.15:
            if vietnamese_score(full) < 0 or "\ufffd" in full:
                return {"not_scored": "unreadable text (mojibake or an unknown encoding)"}
            return {"not_scored": "not Vietnamese text (too few Vietnamese syllables)"}
        title, lead, body = norm.get("title", ""), norm.get("lead", ""), norm.get("text", "")
        for part in (title, lead):  # callers often send text = title + lead + body
            if part and body.startswith(part):
                body = body[len(part) :].lstrip()
        body_sents = split_sentences(body)
        if not title:
            # plain text: the first sentence is the headline, the next one the lead
            title = body_sents.pop(0) if body_sents else ""
            if not lead and body_sents:
                lead = body_sents.pop(0)
        head = " ".join(x if re.search(r"[.!?…]$", x) else x + "." for x in (title, lead) if x)
        published = rec.get("published") or rec.get("published_at")
        return _Prepared(
            i, head, body_sents[: self.max_body_sentences], full,
            str(published) if published else None, truncated,
        )

    # ------------------------------------------------------------------ scoring
    def score_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Score a batch; every input record comes back (copied) with results or a reason."""
        out: list[dict[str, Any]] = [dict(r) if isinstance(r, dict) else {"input": r} for r in records]
        prepared: list[_Prepared] = []
        for i, rec in enumerate(records):
            try:
                p = self._prepare(i, rec)
            except Exception as exc:  # noqa: BLE001 - one bad record never kills the batch
                p = {"error": f"record {i}: {type(exc).__name__}: {exc}"}
            if isinstance(p, dict):
                out[i].update(p)
            else:
                prepared.append(p)
        if not prepared:
            return out
        units: list[str] = []
        owners: list[tuple[int, str]] = []  # (prepared index, "head"|"body")
        for k, p in enumerate(prepared):
            units.append(p.head)
            owners.append((k, "head"))
            for s in p.body_sentences:
                units.append(s)
                owners.append((k, "body"))
        segs = [segment_for_features(u) for u in units]
        probs, topics, x = self.model.predict_units(units, segs)
        w = self.model.config.headline_weight
        by_prep: dict[int, list[int]] = {}
        for u, (k, _) in enumerate(owners):
            by_prep.setdefault(k, []).append(u)
        topic_classes = list(self.model.topic_clf.classes_) if self.model.topic_clf is not None else []
        for k, p in enumerate(prepared):
            idx = by_prep[k]
            head_i, body_i = idx[0], idx[1:]
            if body_i:
                doc = w * probs[head_i] + (1 - w) * probs[body_i].mean(axis=0)
                tdoc = w * topics[head_i] + (1 - w) * topics[body_i].mean(axis=0) if topic_classes else None
            else:
                doc = probs[head_i]
                tdoc = topics[head_i] if topic_classes else None
            label = LABELS[int(doc.argmax())]
            li = LABELS.index(label)
            reasons: list[dict[str, Any]] = []
            ranked = sorted(idx, key=lambda u: -probs[u, li])
            for u in ranked[:3]:
                if label != "neutral" and probs[u, li] < 0.4:
                    break
                reasons.append({"kind": "sentence", "text": units[u][:300], "score": round(float(probs[u, li]), 3)})
            phrases: list[str] = []
            for u in ranked[:3]:
                for ph in self.model.phrase_reasons(x[u], label, k=4):
                    if ph not in phrases:
                        phrases.append(ph)
            reasons.extend({"kind": "phrase", "text": ph} for ph in phrases[:6])
            rec = out[p.index]
            rec["sentiment"] = {
                "label": label,
                "scores": {lab: round(float(doc[j]), 4) for j, lab in enumerate(LABELS)},
                "reasons": reasons,
            }
            if tdoc is not None:
                order = np.argsort(-tdoc)
                rec["topic"] = topic_classes[int(order[0])]
                rec["topic_scores"] = {topic_classes[int(j)]: round(float(tdoc[j]), 4) for j in order[:3]}
            else:
                rec["topic"] = None
            try:
                rec["places"] = self.places.find(p.full_text, p.published, normalized=True) if self.places else []
            except Exception as exc:  # noqa: BLE001 - places are an aid; keep the sentiment
                log.warning("place finding failed on record %s: %s", p.index, exc)
                rec["places"] = []
            rec["model_version"] = self.model_version
            if p.truncated:
                rec["truncated"] = True
        return out


def load_scorer(
    model_path: Path | None = None,
    gazetteer_path: Path | None = None,
    use_ner: bool = True,
) -> Scorer:
    """Load the sentiment/topic model and the gazetteer once, for many batches.

    Parameters
    ----------
    model_path : Path, optional
        A ``sentiment-<version>.joblib`` file; default the newest one shipped in nlp/models/.
    gazetteer_path : Path, optional
        Gazetteer JSON; default ``data/admin/gazetteer_hanam.json`` of the repository.
    """
    t0 = time.perf_counter()
    model = load_model(model_path or default_model_path())
    gaz = load_gazetteer(gazetteer_path or DEFAULT_GAZETTEER)
    scorer = Scorer(model, PlaceFinder(gaz, use_ner=use_ner))
    scorer.load_seconds = time.perf_counter() - t0
    return scorer
