"""Public scoring API used by the crawler, the API and ``ioc nlp score``.

>>> scorer = load_scorer()                                         # doctest: +SKIP
>>> scorer.score_records([{"id": 1, "title": "Tai nạn...", "text": "..."}])  # doctest: +SKIP
>>> scorer.score_records([{"id": 2, "text": "hàng tốt, giao nhanh"}], genre="post")  # doctest: +SKIP

Contract (``Scorer.score_records(records, genre="auto")``). ``genre`` is ``"article"``,
``"post"`` or ``"auto"`` (the default): ``auto`` takes each record's ``genre`` (or ``kind``)
field — ``article``/``news`` or ``post``/``comment``/``social``/``forum`` — and, when it has
none, decides from the record's form (a ``title`` or ``lead`` field, length, sentences,
unaccented or first-person text; :func:`detect_genre`). A forced genre overrides the field.

Each scored record gets ``"sentiment": {"label", "scores", "reasons", "low_confidence"}``,
``"topic"``, ``"topic_scores"``, ``"places"``, ``"genre"``, ``"genre_source"``
(``forced``/``record``/``detected``), ``"confidence"`` (probability of the label; below 0.5
``low_confidence`` is true — the label is still given), ``"features"`` (``tfidf+encoder``, or
``tfidf`` when the encoder cannot run here) and ``"model_version"``. A record that cannot be
scored gets ``"not_scored": "<reason>"`` (empty text, clearly not Vietnamese, unreadable) or
``"error": "<reason>"`` (not a JSON object, a field that is not a string, an unknown genre);
one bad record never stops the batch. Short and unaccented Vietnamese text is scored. HTML
left in a text is stripped (``"html_stripped": true``); Vietnamese text with another script in
it is scored and flagged (``"mixed_scripts"``); texts longer than ``max_chars`` are cut
(``"truncated": true``). Scoring is batched: all units of all records go through the model
together, and encoder vectors are cached per text.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import time
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn

from nlp.errors import ModelLoadError, ModelNotFoundError
from nlp.heads import GENRES, TFIDF_ONLY, WITH_ENCODER, GenreModel
from nlp.places import PlaceFinder, load_gazetteer
from nlp.sentiment import LABELS, NewsModel, add_reason_phrase, join_adjacent_phrases
from nlp.settings import DEFAULT_GAZETTEER, DEFAULT_MODEL_DIR, NLPSettings
from nlp.text import (
    is_vietnamese_syllable,
    normalize_text,
    segment_for_features,
    split_sentences,
    strip_diacritics,
    vietnamese_ratio,
    vietnamese_score,
)

log = logging.getLogger(__name__)

MODEL_FORMAT = 1  # NewsModel files (TF-IDF only, articles)
GENRE_MODEL_FORMAT = 2  # GenreModel files (genre heads, encoder + TF-IDF fallback)
_VERSION_RE = re.compile(r"sentiment-(.+)\.joblib$")
GENRE_CHOICES = ("article", "post", "auto")
_GENRE_ALIASES = {
    "article": "article",
    "news": "article",
    "articles": "article",
    "post": "post",
    "posts": "post",
    "comment": "post",
    "comments": "post",
    "social": "post",
    "forum": "post",
}
LOW_CONFIDENCE = 0.5


def default_model_path(model_dir: Path = DEFAULT_MODEL_DIR) -> Path:
    """The newest ``sentiment-<version>.joblib`` shipped in ``model_dir``."""
    files = sorted(Path(model_dir).glob("sentiment-*.joblib"))
    if not files:
        raise ModelNotFoundError(f"no sentiment-*.joblib model in {model_dir}: run `ioc nlp train`")
    return files[-1]


def save_model(model: NewsModel | GenreModel, path: Path) -> Path:
    """Write the model atomically (temp name, then rename), with library versions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": GENRE_MODEL_FORMAT if isinstance(model, GenreModel) else MODEL_FORMAT,
        "model": model,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    tmp = path.with_name(path.name + ".tmp")
    joblib.dump(payload, tmp, compress=("xz", 6))
    tmp.replace(path)
    return path


def load_model(path: Path) -> NewsModel | GenreModel:
    """Load a model file written by :func:`save_model` (format 1: NewsModel, 2: GenreModel).

    Raises
    ------
    ModelNotFoundError
        The file does not exist.
    ModelLoadError
        The file is not a model of these formats or cannot be unpickled by the installed
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
    ok = isinstance(payload, dict) and (
        (payload.get("format") == MODEL_FORMAT and isinstance(payload.get("model"), NewsModel))
        or (
            payload.get("format") == GENRE_MODEL_FORMAT
            and isinstance(payload.get("model"), GenreModel)
        )
    )
    if not ok:
        raise ModelLoadError(
            f"sentiment model {path} is not an ioc-monitor model file (format {MODEL_FORMAT} or {GENRE_MODEL_FORMAT})"
        )
    saved = str(payload.get("sklearn_version", "?"))
    if saved.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        log.warning(
            "model %s was saved with scikit-learn %s, running %s", path, saved, sklearn.__version__
        )
    return payload["model"]


# ------------------------------------------------------------------------------ input checks

_TAG_RE = re.compile(
    r"<(?:script|style)\b.*?</(?:script|style)\s*>|<!--.*?-->|</?[A-Za-z][^<>]{0,2000}>",
    re.S | re.I,
)
_BLOCK_TAG_RE = re.compile(r"</?(?:p|div|br|li|h[1-6]|tr|section|article)\b[^<>]*>", re.I)
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
_EMOJI_RE = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_EN_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "of",
        "to",
        "in",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "for",
        "on",
        "with",
        "by",
        "at",
        "from",
        "that",
        "this",
        "it",
        "as",
        "or",
        "not",
        "have",
        "has",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "they",
        "we",
        "you",
        "he",
        "she",
        "his",
        "her",
        "their",
        "our",
        "its",
        "which",
        "who",
        "what",
        "when",
        "where",
        "about",
        "into",
        "over",
        "after",
        "more",
        "most",
        "some",
        "than",
        "then",
        "there",
        "these",
        "those",
    ]
)
# first-person and chat words of comments (not "tôi", "anh", "chị", "em": news quotes and names use them)
_FIRST_PERSON = frozenset(
    [
        "mình",
        "tui",
        "tớ",
        "mik",
        "mk",
        "ad",
        "shop",
        "sp",
        "ko",
        "k",
        "kh",
        "hok",
        "khum",
        "dc",
        "đc",
        "j",
        "vs",
        "nhé",
        "nha",
        "ạ",
        "ơi",
        "ak",
        "bn",
        "nt",
        "mn",
        "ae",
        "lun",
        "thik",
        "hix",
        "hjx",
        "bạn",
        "các bạn",
    ]
)


def strip_html(text: str) -> tuple[str, bool]:
    """Text without HTML tags, comments, scripts and entities; (text, whether anything was stripped)."""
    if "<" not in text and "&" not in text:
        return text, False
    out = _BLOCK_TAG_RE.sub("\n", text)
    out = _TAG_RE.sub(" ", out)
    out = html.unescape(out)
    return out, out != text


def _script_shares(text: str) -> tuple[float, str]:
    """(share of letters in Latin script, the most common other script) of ``text``."""
    latin = other = 0
    names: dict[str, int] = {}
    for ch in text[:20_000]:
        if not ch.isalpha():
            continue
        try:
            script = unicodedata.name(ch).split()[0]
        except ValueError:
            script = "UNKNOWN"
        if script == "LATIN":
            latin += 1
        else:
            other += 1
            names[script] = names.get(script, 0) + 1
    total = latin + other
    top = max(names, key=names.get) if names else ""
    return (latin / total if total else 0.0), top.title()


def language_check(text: str) -> str | None:
    """None when ``text`` can be scored as Vietnamese, else the reason it cannot.

    Accepts short and unaccented Vietnamese: only text whose letters are mostly another
    script, or four words or more with hardly any Vietnamese syllables (English, say), or
    mojibake, is refused.
    """
    latin, other = _script_shares(text)
    words = _WORD_RE.findall(text[:20_000])
    if not words:
        return "no words in the text (only numbers, symbols or emoji)"
    if latin < 0.5:
        return f"not Vietnamese text (mostly {other or 'non-Latin'} script)"
    if vietnamese_ratio(text) >= 0.15:
        return None
    if vietnamese_score(text) < 0 or "\ufffd" in text:
        return "unreadable text (mojibake or an unknown encoding)"
    latin_words = [w.lower() for w in words if all(ord(c) < 0x250 for c in w)]
    if len(latin_words) < 4:
        return None  # a few words: too little to call it another language
    syll = sum(is_vietnamese_syllable(strip_diacritics(w)) for w in latin_words) / len(latin_words)
    english = sum(w in _EN_WORDS for w in latin_words) / len(latin_words)
    if syll < 0.6 or english >= 0.25:
        return "not Vietnamese text (too few Vietnamese syllables)"
    return None


def detect_genre(record: dict[str, Any], text: str) -> str:
    """``article`` or ``post`` from a record's form when it carries no genre field.

    A ``title`` or ``lead`` field means an article. Otherwise the text's form decides: post
    cues are text typed without diacritics, emoji, first-person and chat words (mình, em, shop,
    ạ, nhé, ko, dc...), shouting punctuation or stretched letters, a lower-case start. A text
    with none of them that starts with a capital, carries diacritics and has 40+ characters
    reads as news (a headline and lead); so does one of 600+ characters and three sentences
    with at most one cue. Everything else is a post. Measured on the labelled sets by
    ``benchmarks/nlp_sentiment.py`` (genre detection line).
    """
    if (record.get("title") or "").strip() or (record.get("lead") or "").strip():
        return "article"
    low = [w.lower().strip(".,!?…:;\"'()") for w in text.split()[:300]]
    cues = 0
    accented = vietnamese_ratio(text)
    cues += accented < 0.15  # typed without accents
    cues += bool(_EMOJI_RE.search(text))
    cues += any(w in _FIRST_PERSON for w in low)
    cues += bool(re.search(r"[!?]{2,}|\.{4,}|([^\W\d_])\1{3,}", text))
    cues += bool(text[:1].islower())
    if cues == 0 and len(text) >= 40 and accented >= 0.3:
        return "article"
    if len(text) >= 600 and len(split_sentences(text)) >= 3 and cues <= 1:
        return "article"
    return "post"


def parse_genre(value: Any) -> str | None:
    """The genre a record's ``genre``/``kind`` value names, or None if it names none."""
    if not isinstance(value, str):
        return None
    return _GENRE_ALIASES.get(value.strip().lower())


@dataclass
class _Prepared:
    index: int
    genre: str
    genre_source: str
    head: str  # article: title + lead; post: the text
    body_sentences: list[str]
    full_text: str
    published: str | None
    truncated: bool
    html_stripped: bool
    mixed_scripts: str | None = None


class Scorer:
    """A loaded sentiment/topic model, the gazetteer and (optionally) the sentence encoder.

    Parameters
    ----------
    model : GenreModel or NewsModel
        A genre model (heads per genre, encoder + TF-IDF fallback) or a format-1 TF-IDF model
        (one head for both genres).
    places : PlaceFinder or None
    encoder : TextEncoder or None
        The encoder the model's ``tfidf+encoder`` heads were trained with; None: TF-IDF heads.
    encoder_reason : str
        Why there is no encoder (reported once in the log and by :attr:`features`).
    max_chars : int
        Longer fields are cut before scoring (and flagged ``"truncated"``): a 5 MB text costs
        what its first ``max_chars`` characters cost.
    max_body_sentences : int
        Body sentences scored per article (the first ones; news puts the facts first).
    encoder_body_chars : int
        Articles: characters of the body the encoder reads after title + lead (0: none; the
        encoder's own bound still applies).
    """

    def __init__(
        self,
        model: GenreModel | NewsModel,
        places: PlaceFinder | None = None,
        encoder: Any = None,
        encoder_reason: str = "",
        max_chars: int = 200_000,
        max_body_sentences: int = 60,
        min_chars: int | None = None,  # accepted for compatibility; short text is scored now
        encoder_body_chars: int = 0,
    ) -> None:
        self.model = model
        self.places = places
        self.max_chars = max_chars
        self.max_body_sentences = max_body_sentences
        self.encoder_body_chars = encoder_body_chars
        self.load_seconds: float | None = None
        self.encoder = None
        self.encoder_reason = encoder_reason
        if isinstance(model, GenreModel) and model.needs_encoder:
            if encoder is None:
                self.encoder_reason = encoder_reason or "no encoder given"
            elif model.encoder_name and getattr(encoder, "name", None) != model.encoder_name:
                self.encoder_reason = f"encoder {getattr(encoder, 'name', '?')} is not the model's {model.encoder_name}"
            else:
                self.encoder = encoder
            if self.encoder is None:
                log.warning("sentiment: TF-IDF-only heads (%s)", self.encoder_reason)

    @property
    def model_version(self) -> str:
        return f"sentiment-{self.model.version}"

    @property
    def features(self) -> str:
        """``tfidf+encoder`` when the encoder heads are used, else ``tfidf``."""
        return WITH_ENCODER if self.encoder is not None else TFIDF_ONLY

    # ------------------------------------------------------------------ preparation
    def _prepare(self, i: int, rec: Any, genre: str) -> _Prepared | dict[str, str]:
        if not isinstance(rec, dict):
            return {"error": "record is not a JSON object"}
        fields = {}
        for key in ("title", "lead", "text"):
            val = rec.get(key)
            if val is None:
                continue
            if not isinstance(val, str):
                return {"error": f"field {key!r} is not a string ({type(val).__name__})"}
            fields[key] = val
        if not fields:
            return {"error": 'no "text" field (nor "title" or "lead")'}
        source = "forced"
        if genre == "auto":
            raw = rec.get("genre", rec.get("kind"))
            if raw is not None:
                parsed = parse_genre(raw)
                if parsed is None:
                    return {"error": f"unknown genre {str(raw)[:40]!r} (use article or post)"}
                genre, source = parsed, "record"
        if not any(v.strip() for v in fields.values()):
            return {"not_scored": "empty text: no title, lead or text"}
        truncated = stripped = False
        for key, val in list(fields.items()):
            if len(val) > self.max_chars:
                cut = val.rfind(" ", 0, self.max_chars)
                fields[key] = val[: cut if cut > self.max_chars // 2 else self.max_chars]
                truncated = True
            fields[key], s = strip_html(fields[key])
            stripped |= s
        norm = {k: normalize_text(v) for k, v in fields.items()}
        full = "\n".join(norm[k] for k in ("title", "lead", "text") if norm.get(k))
        if not full.strip():
            return {"not_scored": "empty text once HTML was removed"}
        why = language_check(full)
        if why:
            return {"not_scored": why}
        latin, other = _script_shares(full)
        mixed = f"{other} letters: {1 - latin:.0%} of the text" if latin < 0.9 and other else None
        if genre == "auto":
            genre, source = detect_genre(rec, full), "detected"
        published = rec.get("published") or rec.get("published_at")
        published = str(published) if published else None
        if genre == "post":
            text = " ".join(full.split())
            return _Prepared(
                i, genre, source, text, [], full, published, truncated, stripped, mixed
            )
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
        return _Prepared(
            i,
            genre,
            source,
            head,
            body_sents[: self.max_body_sentences],
            full,
            published,
            truncated,
            stripped,
            mixed,
        )

    # ------------------------------------------------------------------ model calls
    def _encode(self, texts: list[str]) -> np.ndarray | None:
        if self.encoder is None or not texts:
            return None
        try:
            return self.encoder.encode(texts)
        except Exception as exc:  # noqa: BLE001 - the encoder is an aid: fall back to TF-IDF heads
            self.encoder_reason = f"encoder failed: {type(exc).__name__}: {exc}"
            log.warning("sentiment: encoder failed, TF-IDF-only heads from now on (%s)", exc)
            self.encoder = None
            return None

    def _units(
        self, genre: str, units: list[str], segs: list[str], encoded: bool, emb: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, Any, Any, list[str]]:
        """(sentiment probs, topic probs, features, head used, topic classes) of units."""
        model = self.model
        if isinstance(model, NewsModel):
            p, t, x = model.predict_units(units, segs)
            classes = list(model.topic_clf.classes_) if model.topic_clf is not None else []
            return p, t, x, model, classes
        use_enc = encoded and emb is not None
        head = model.head(genre, use_enc)
        p, x = head.proba(units, segs, emb if head.uses_encoder else None)
        th = model.topic_head(use_enc)
        if th is None:
            return p, np.zeros((len(units), 0)), x, head, []
        t, _ = th.proba(units, segs, emb if th.uses_encoder else None)
        return p, t, x, head, list(th.classes)

    # ------------------------------------------------------------------ scoring
    def score_records(
        self, records: list[dict[str, Any]], genre: str = "auto"
    ) -> list[dict[str, Any]]:
        """Score a batch; every input record comes back (copied) with results or a reason.

        ``genre``: ``"article"``, ``"post"`` (forced for every record) or ``"auto"``.
        """
        if genre not in GENRE_CHOICES:
            raise ValueError(f"genre {genre!r} is not one of {', '.join(GENRE_CHOICES)}")
        out: list[dict[str, Any]] = [
            dict(r) if isinstance(r, dict) else {"input": r} for r in records
        ]
        prepared: list[_Prepared] = []
        for i, rec in enumerate(records):
            try:
                p = self._prepare(i, rec, genre)
            except Exception as exc:  # noqa: BLE001 - one bad record never kills the batch
                p = {"error": f"cannot be scored: {type(exc).__name__}: {exc}"}
            if isinstance(p, dict):
                out[i].update(p)
            else:
                prepared.append(p)
        for g in GENRES:
            group = [p for p in prepared if p.genre == g]
            if group:
                self._score_group(g, group, out)
        return out

    def _score_group(
        self, genre: str, prepared: list[_Prepared], out: list[dict[str, Any]]
    ) -> None:
        heads = [p.head for p in prepared]
        head_segs = [segment_for_features(u) for u in heads]
        # bounded input: the encoder reads title + lead (posts: the text), or with
        # encoder_body_chars > 0 also the start of the body (measured: model card)
        extra = self.encoder_body_chars if genre == "article" else 0
        emb = self._encode(
            [
                (p.head + " " + " ".join(p.body_sentences)[:extra]).strip() if extra else p.head
                for p in prepared
            ]
        )
        features = WITH_ENCODER if emb is not None else TFIDF_ONLY
        if isinstance(self.model, NewsModel):
            features = TFIDF_ONLY
        ph, th, xh, head_model, topic_classes = self._units(genre, heads, head_segs, True, emb)
        body: list[str] = []
        owner: list[int] = []
        for k, p in enumerate(prepared):
            body.extend(p.body_sentences)
            owner.extend([k] * len(p.body_sentences))
        if (
            body
        ):  # body sentences: the genre's TF-IDF head (the encoder reads only the bounded input)
            pb, tb, xb, body_model, _ = self._units(
                genre, body, [segment_for_features(u) for u in body], False, None
            )
        owner_arr = np.array(owner, dtype=int)
        w = getattr(self.model, "headline_weight", None) or self.model.config.headline_weight
        for k, p in enumerate(prepared):
            rows = np.flatnonzero(owner_arr == k) if body else np.array([], dtype=int)
            if len(rows):
                doc = w * ph[k] + (1 - w) * pb[rows].mean(axis=0)
                tdoc = w * th[k] + (1 - w) * tb[rows].mean(axis=0) if topic_classes else None
            else:
                doc = ph[k]
                tdoc = th[k] if topic_classes else None
            label = LABELS[int(doc.argmax())]
            li = LABELS.index(label)
            # candidate reason units: (text, probability of the label, features row, model)
            cands = [(p.head, float(ph[k, li]), xh[k], head_model)]
            cands += [(body[u], float(pb[u, li]), xb[u], body_model) for u in rows]
            cands.sort(key=lambda c: -c[1])
            reasons: list[dict[str, Any]] = []
            for text, score, _, _ in cands[:3]:
                if label != "neutral" and score < 0.4:
                    break
                reasons.append({"kind": "sentence", "text": text[:300], "score": round(score, 3)})
            # phrases: readable Vietnamese (no punctuation, numbers or function words at the
            # ends, no lone function word: nlp.sentiment.clean_reason_phrase), each once
            phrases: list[str] = []
            for _, _, xrow, m in cands[:3]:
                for phrase in m.phrase_reasons(xrow, label, k=6):
                    raw = _segmented(m, phrase)
                    if raw is not None:
                        add_reason_phrase(phrases, raw)
                    else:
                        add_reason_phrase(phrases, phrase, cleaned=True)
            # single syllables next to each other in the text read as one phrase
            phrases = join_adjacent_phrases(phrases, [c[0] for c in cands[:3]])
            reasons.extend({"kind": "phrase", "text": ph_} for ph_ in phrases[:6])
            confidence = float(doc[li])
            rec = out[p.index]
            rec["sentiment"] = {
                "label": label,
                "scores": {lab: round(float(doc[j]), 4) for j, lab in enumerate(LABELS)},
                "reasons": reasons,
                "low_confidence": confidence < LOW_CONFIDENCE,
            }
            rec["confidence"] = round(confidence, 4)
            rec["genre"] = genre
            rec["genre_source"] = p.genre_source
            rec["features"] = features
            if tdoc is not None:
                order = np.argsort(-tdoc)
                rec["topic"] = topic_classes[int(order[0])]
                rec["topic_scores"] = {
                    topic_classes[int(j)]: round(float(tdoc[j]), 4) for j in order[:3]
                }
            else:
                rec["topic"] = None
            try:
                rec["places"] = (
                    self.places.find(p.full_text, p.published, normalized=True)
                    if self.places
                    else []
                )
            except Exception as exc:  # noqa: BLE001 - places are an aid; keep the sentiment
                log.warning("place finding failed on record %s: %s", p.index, exc)
                rec["places"] = []
            rec["model_version"] = self.model_version
            if p.truncated:
                rec["truncated"] = True
            if p.html_stripped:
                rec["html_stripped"] = True
            if p.mixed_scripts:
                rec["mixed_scripts"] = p.mixed_scripts


def _segmented(model: Any, phrase: str, max_syllables: int = 9) -> str | None:
    """The vocabulary entry (word-segmented: ``bị_thương nặng``) a reason phrase was read from,
    or None when the model's word vocabulary does not hold it.

    Heads give phrases with the segmentation undone (``bị thương nặng``); cleaning needs the
    words back, or "bị thương" (injured) would be cut to "thương" as if "bị" stood alone. The
    candidate segmentations are looked up in the TF-IDF vocabulary; the one with the longest
    words wins.
    """
    fz = getattr(model, "featurizer", None)
    vec = getattr(fz, "word_vec", None) or getattr(getattr(fz, "news", None), "word_vec", None)
    if vec is None:
        vec = getattr(model, "word_vec", None)
    vocab = getattr(vec, "vocabulary_", None)
    sylls = phrase.split()
    if not vocab or not sylls or len(sylls) > max_syllables:
        return None
    if phrase in vocab and len(sylls) == 1:
        return phrase
    best: str | None = None
    for mask in range(2 ** (len(sylls) - 1)):  # bit i: a word boundary after syllable i
        parts = [sylls[0]]
        for i, s in enumerate(sylls[1:]):
            parts.append((" " if mask >> i & 1 else "_") + s)
        cand = "".join(parts)
        if cand in vocab and (best is None or cand.count(" ") < best.count(" ")):
            best = cand
    return best


def load_scorer(
    model_path: Path | None = None,
    gazetteer_path: Path | None = None,
    use_ner: bool = True,
    state_dir: Path | None = None,
    use_encoder: bool | None = None,
) -> Scorer:
    """Load the sentiment/topic model, the gazetteer and the encoder once, for many batches.

    Parameters
    ----------
    model_path : Path, optional
        A ``sentiment-<version>.joblib`` file; default the newest one shipped in nlp/models/.
    gazetteer_path : Path, optional
        Gazetteer JSON; default ``data/admin/gazetteer_hanam.json`` of the repository.
    state_dir : Path, optional
        Where the encoder's vector cache lives (``<state_dir>/nlp-cache``): scoring a text
        again (a re-scored article, a re-imported post) reads its vector instead of running
        the encoder. None: no disk cache. The product passes its state dir (``IOC_STATE_DIR``).
    use_encoder : bool, optional
        False: the TF-IDF-only heads even where the encoder could run; None: the
        ``IOC_NLP_ENCODER`` setting (:attr:`nlp.settings.NLPSettings.use_encoder`).
    """
    from nlp.encoder import load_encoder

    t0 = time.perf_counter()
    model = load_model(model_path or default_model_path())
    gaz = load_gazetteer(gazetteer_path or DEFAULT_GAZETTEER)
    encoder, reason = None, "switched off"
    if use_encoder is None:
        use_encoder = NLPSettings().use_encoder
    if not use_encoder:
        reason = "switched off (IOC_NLP_ENCODER=off or --no-encoder)"
    elif isinstance(model, GenreModel) and model.needs_encoder:
        encoder, reason = load_encoder(
            state_dir, max_chars=int(model.meta.get("encoder_max_chars", 1000)), enabled=True
        )
    scorer = Scorer(
        model, PlaceFinder(gaz, use_ner=use_ner), encoder=encoder, encoder_reason=reason
    )
    scorer.load_seconds = time.perf_counter() - t0
    return scorer
