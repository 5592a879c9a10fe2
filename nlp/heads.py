"""Genre heads: one sentiment classifier per genre (article, post) and a topic classifier, each
combining TF-IDF features with sentence-encoder features (concatenation), calibrated.

A :class:`Head` is: a text featurizer (``"news"``: the news recipe of :mod:`nlp.sentiment` —
item and headline word n-grams, char n-grams, LSA of the unlabelled news, polarity lexicon;
``"lsa"``: only its dense part, LSA and lexicon, no n-grams; ``"plain"``: word 1–2-grams + accent-folded char 2–5-grams + length columns, for posts;
``"none"``), the encoder block scaled by ``encoder_weight`` (0 = no encoder), a multinomial
logistic regression (balanced class weights, C), a bias added to the neutral class's decision
value, and one temperature fitted on out-of-fold decision values (calibrated probabilities).

:class:`GenreModel` is what ``sentiment-<version>.joblib`` holds from format 2 on: for each
genre a head with the encoder and a TF-IDF-only head (the fallback when the encoder cannot
run), and the same two for topics. Choices (featurizer, weight, C, bias) are made by
:mod:`nlp.selection` inside cross-validation folds; the model card gives the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import minimize_scalar
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from nlp.sentiment import LABELS, Corpus, NewsModel, fit_vectorizers, split_headline
from nlp.text import strip_diacritics

GENRES = ("article", "post")
WITH_ENCODER = "tfidf+encoder"
TFIDF_ONLY = "tfidf"


@dataclass(frozen=True)
class HeadConfig:
    """One point of the model-selection grid."""

    text: str = "plain"  # "news" | "plain" | "none"
    encoder_weight: float = 0.0  # scale of the encoder block; 0 = TF-IDF only
    C: float = 1.0
    neutral_bias: float = 0.0

    def label(self) -> str:
        return f"{self.text}+enc×{self.encoder_weight:g} C={self.C:g} bias={self.neutral_bias:+.2f}"


@dataclass
class Data:
    """Texts of one training or test set with their features' inputs.

    ``texts`` are normalised (:func:`nlp.text.normalize_text`), ``segs`` word-segmented
    (:func:`nlp.text.segment_for_features`), ``emb`` the encoder's rows (None: no encoder).
    Optional: ``groups`` names the set each row comes from (``vlsp2016``, ``vsfc-train/stripped``
    ...; selection can score each set on its own), ``keys`` the original item's id — a
    stripped-diacritics copy shares its original's key, so folds keep copies together
    (:func:`fold_splits`).
    """

    texts: list[str]
    segs: list[str]
    labels: np.ndarray
    emb: np.ndarray | None = None
    weights: np.ndarray | None = None
    groups: np.ndarray | None = None
    keys: np.ndarray | None = None

    def subset(self, idx: Sequence[int] | np.ndarray) -> Data:
        idx = np.asarray(idx, dtype=int)
        return Data(
            [self.texts[i] for i in idx],
            [self.segs[i] for i in idx],
            self.labels[idx],
            None if self.emb is None else self.emb[idx],
            None if self.weights is None else self.weights[idx],
            None if self.groups is None else self.groups[idx],
            None if self.keys is None else self.keys[idx],
        )

    def without_encoder(self) -> Data:
        """The same rows without encoder vectors (for the TF-IDF-only heads)."""
        return replace(self, emb=None)

    @staticmethod
    def concat(parts: Sequence[Data]) -> Data:
        emb = None if any(p.emb is None for p in parts) else np.vstack([p.emb for p in parts])
        w = [p.weights if p.weights is not None else np.ones(len(p.texts)) for p in parts]
        groups = keys = None
        if any(p.groups is not None for p in parts):
            groups = np.concatenate(
                [
                    p.groups if p.groups is not None else np.full(len(p.texts), "", dtype=object)
                    for p in parts
                ]
            ).astype(object)
        if any(p.keys is not None for p in parts):
            keys = np.concatenate(
                [
                    p.keys
                    if p.keys is not None
                    else np.array([f"_row{n}-{i}" for i in range(len(p.texts))], dtype=object)
                    for n, p in enumerate(parts)
                ]
            ).astype(object)
        return Data(
            [t for p in parts for t in p.texts],
            [s for p in parts for s in p.segs],
            np.concatenate([p.labels for p in parts]),
            emb,
            np.concatenate(w),
            groups,
            keys,
        )


def fold_splits(data: Data, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds (by set and label when ``groups`` is given) that keep rows sharing a key
    (an item and its stripped-diacritics copy) in the same fold: no item is scored by a model
    that saw its copy."""

    strata = np.asarray(data.labels).astype(str)
    if data.groups is not None:
        # a copy's stratum is its original's set: strip the "/stripped" suffix
        base = np.array([str(g).split("/")[0] for g in data.groups], dtype=object)
        strata = np.array([f"{g}|{y}" for g, y in zip(base, strata, strict=True)], dtype=object)
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    if data.keys is None or len(set(data.keys)) == len(data.keys):
        return list(skf.split(np.zeros(len(strata)), strata))
    uniq, first, inverse = np.unique(
        np.asarray(data.keys).astype(str), return_index=True, return_inverse=True
    )
    out = []
    for _, te_u in skf.split(np.zeros(len(uniq)), strata[first]):
        te = np.isin(inverse, te_u)
        out.append((np.flatnonzero(~te), np.flatnonzero(te)))
    return out


# ------------------------------------------------------------------------------ featurizers


class TextFeaturizer:
    """TF-IDF side of a head; ``n_word`` first columns are word n-grams (for reasons)."""

    def __init__(self, kind: str, news_base: NewsModel | None = None) -> None:
        if kind not in ("news", "lsa", "plain", "none"):
            raise ValueError(f"unknown text featurizer {kind!r}")
        if kind in ("news", "lsa") and news_base is None:
            raise ValueError("the news featurizer needs the fitted LSA/lexicon base model")
        self.kind = kind
        self.news: NewsModel | None = None
        if kind in ("news", "lsa"):
            assert news_base is not None
            self.news = NewsModel(
                config=news_base.config,
                lsa_vec=news_base.lsa_vec,
                lsa_terms=news_base.lsa_terms,
                neg_lexicon=news_base.neg_lexicon,
                pos_lexicon=news_base.pos_lexicon,
            )
        self.word_vec: TfidfVectorizer | None = None
        self.char_vec: TfidfVectorizer | None = None
        self._names: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_names"] = None
        return state

    def fit(self, texts: Sequence[str], segs: Sequence[str]) -> TextFeaturizer:
        if self.kind == "news":
            assert self.news is not None
            fit_vectorizers(self.news, Corpus(list(texts), list(segs)))
            vecs = (self.news.word_vec, self.news.head_vec, self.news.char_vec)
        elif self.kind == "lsa":
            vecs = ()
        elif self.kind == "plain":
            min_df = 2 if len(texts) > 2000 else 1
            self.word_vec = TfidfVectorizer(
                ngram_range=(1, 2),
                sublinear_tf=True,
                token_pattern=r"\S+",
                min_df=min_df,
                dtype=np.float32,
            ).fit(segs)
            self.char_vec = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(2, 5),
                min_df=2,
                sublinear_tf=True,
                max_features=150_000,
                dtype=np.float32,
            ).fit(_folded(texts))
            vecs = (self.word_vec, self.char_vec)
        else:
            vecs = ()
        for vec in vecs:
            if vec is not None and hasattr(vec, "stop_words_"):
                vec.stop_words_ = None  # pruned-term set: large to pickle, not needed
        return self

    def transform(self, texts: Sequence[str], segs: Sequence[str]) -> sparse.csr_matrix:
        n = len(texts)
        if self.kind == "news":
            assert self.news is not None
            heads = [split_headline(s)[0] for s in segs]
            return self.news.features(list(segs), heads, [t.lower() for t in texts])
        if self.kind == "lsa":  # dense only: LSA of item and headline + lexicon counts (no n-grams)
            assert self.news is not None and self.news.lsa_terms is not None
            heads = [split_headline(s)[0] for s in segs]
            blocks = [self.news._lsa(list(segs)), self.news._lsa(heads)]
            if self.news.neg_lexicon:
                blocks += [self.news._lex(list(segs)), self.news._lex(heads)]
            return sparse.csr_matrix(np.hstack(blocks))
        if self.kind == "plain":
            assert self.word_vec is not None and self.char_vec is not None
            toks = np.array([len(s.split()) for s in segs], dtype=np.float32)
            # short comments ("ok", "tạm được") lean neutral: length as a few dense columns
            length = (
                np.c_[np.log1p(toks) / 3, toks <= 3, toks <= 8, toks >= 30].astype(np.float32) * 0.5
            )
            return sparse.hstack(
                [
                    self.word_vec.transform(segs),
                    self.char_vec.transform(_folded(texts)),
                    sparse.csr_matrix(length),
                ]
            ).tocsr()
        return sparse.csr_matrix((n, 0), dtype=np.float32)

    @property
    def n_word(self) -> int:
        if self.kind == "lsa":
            return 0
        vec = self.news.word_vec if self.news is not None else self.word_vec
        return len(vec.vocabulary_) if vec is not None else 0

    def word_names(self) -> np.ndarray:
        if self._names is None:
            vec = self.news.word_vec if self.news is not None else self.word_vec
            self._names = vec.get_feature_names_out() if vec is not None else np.array([])
        return self._names


def _folded(texts: Sequence[str]) -> list[str]:
    """Lower case without diacritics: char n-grams that match text typed without accents."""
    return [strip_diacritics(t.lower()) for t in texts]


# ------------------------------------------------------------------------------ the head


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def fit_temperature(decisions: np.ndarray, y_idx: np.ndarray) -> float:
    def nll(t: float) -> float:
        p = _softmax(decisions / t)
        return float(-np.log(p[np.arange(len(y_idx)), y_idx] + 1e-12).mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


@dataclass
class Head:
    """A fitted classifier over ``classes`` (LABELS for sentiment, the topics for topics)."""

    config: HeadConfig
    classes: tuple[str, ...] = LABELS
    featurizer: TextFeaturizer | None = None
    clf: LogisticRegression | None = None
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_encoder(self) -> bool:
        return self.config.encoder_weight > 0

    def matrix(self, xt: sparse.csr_matrix, emb: np.ndarray | None) -> Any:
        w = self.config.encoder_weight
        if w <= 0:
            return xt
        if emb is None:
            raise ValueError("this head needs encoder features")
        if xt.shape[1] == 0:
            return np.asarray(emb, dtype=np.float32) * w
        return sparse.hstack([xt, sparse.csr_matrix(np.asarray(emb, dtype=np.float32) * w)]).tocsr()

    def fit_matrix(self, x: Any, labels: np.ndarray, weights: np.ndarray | None = None) -> Head:
        self.clf = LogisticRegression(C=self.config.C, max_iter=3000, class_weight="balanced")
        self.clf.fit(x, labels, sample_weight=weights)
        self.clf.coef_ = self.clf.coef_.astype(np.float32)
        return self

    def decision_matrix(self, x: Any) -> np.ndarray:
        """Decision values in ``classes`` order, the neutral bias added."""
        assert self.clf is not None
        d = self.clf.decision_function(x)
        if d.ndim == 1:  # two classes seen in training
            d = np.c_[-d, d]
        order = list(self.clf.classes_)
        out = np.full((d.shape[0], len(self.classes)), -1e3, dtype=np.float64)
        for j, c in enumerate(self.classes):
            if c in order:
                out[:, j] = d[:, order.index(c)]
        if "neutral" in self.classes:
            out[:, self.classes.index("neutral")] += self.config.neutral_bias
        return out

    # whole-pipeline helpers
    def fit(
        self, data: Data, news_base: NewsModel | None = None, calibrate: bool = True, folds: int = 5
    ) -> Head:
        self.featurizer = TextFeaturizer(self.config.text, news_base).fit(data.texts, data.segs)
        x = self.matrix(self.featurizer.transform(data.texts, data.segs), data.emb)
        self.fit_matrix(x, data.labels, data.weights)
        if calibrate:
            oof = oof_decisions(self.config, data, news_base, folds, self.classes)
            y_idx = np.array([self.classes.index(c) for c in data.labels])
            self.temperature = fit_temperature(oof, y_idx)
        return self

    def features(self, texts: Sequence[str], segs: Sequence[str], emb: np.ndarray | None) -> Any:
        assert self.featurizer is not None
        return self.matrix(self.featurizer.transform(texts, segs), emb)

    def proba(
        self, texts: Sequence[str], segs: Sequence[str], emb: np.ndarray | None
    ) -> tuple[np.ndarray, Any]:
        """(probabilities in ``classes`` order, the feature matrix) of the units."""
        x = self.features(texts, segs, emb)
        return _softmax(self.decision_matrix(x) / self.temperature), x

    def phrase_reasons(self, x_row: Any, label: str, k: int = 5) -> list[str]:
        """Word n-grams of one unit that pushed it towards ``label`` (coefficient × value)."""
        fz = self.featurizer
        if fz is None or self.clf is None or fz.n_word == 0 or not sparse.issparse(x_row):
            return []
        if fz.kind == "news" and fz.news is not None:
            fz.news.sentiment_clf = (
                self.clf
            )  # NewsModel.phrase_reasons reads the classifier's weights
            return fz.news.phrase_reasons(x_row, label, k)
        from nlp.sentiment import _WEAK_WORDS

        ci = list(self.clf.classes_).index(label)
        coef = self.clf.coef_[ci] - self.clf.coef_.mean(axis=0)
        row = x_row.tocsr()
        n_word = fz.n_word
        contrib = sorted(
            ((coef[j] * v, j) for j, v in zip(row.indices, row.data, strict=True) if j < n_word),
            reverse=True,
        )
        names = fz.word_names()
        out: list[str] = []
        for c, j in contrib:
            if c <= 0 or len(out) >= k:
                break
            phrase = names[j].replace("_", " ")
            words = phrase.split()
            if all(w in _WEAK_WORDS for w in words) or any(
                not any(ch.isalpha() for ch in w) for w in words
            ):
                continue  # function words, numbers and punctuation are not reasons a reader can use
            if not any(phrase in o or o in phrase for o in out):
                out.append(phrase)
        return out


def oof_decisions(
    config: HeadConfig,
    data: Data,
    news_base: NewsModel | None,
    folds: int,
    classes: tuple[str, ...] = LABELS,
    seed: int = 1,
) -> np.ndarray:
    """Out-of-fold decision values of ``config`` on ``data`` (for the temperature)."""
    out = np.zeros((len(data.texts), len(classes)))
    for tr, te in fold_splits(data, folds, seed):
        h = Head(config, classes)
        h.fit(data.subset(tr), news_base, calibrate=False)
        sub = data.subset(te)
        out[te] = h.decision_matrix(h.features(sub.texts, sub.segs, sub.emb))
    return out


# ------------------------------------------------------------------------------ the model file


@dataclass
class GenreModel:
    """Sentiment heads per genre and feature set, topic heads per feature set (format 2)."""

    version: str
    heads: dict[str, dict[str, Head]]  # genre -> {"tfidf+encoder": Head, "tfidf": Head}
    topic: dict[str, Head]  # feature set -> topic head
    encoder_name: str | None = None
    headline_weight: float = 0.5  # article: title+lead vs body sentences
    meta: dict[str, Any] = field(default_factory=dict)

    def head(self, genre: str, with_encoder: bool) -> Head:
        pair = self.heads[genre]
        if with_encoder and WITH_ENCODER in pair:
            return pair[WITH_ENCODER]
        return pair[TFIDF_ONLY]

    def topic_head(self, with_encoder: bool) -> Head | None:
        if with_encoder and WITH_ENCODER in self.topic:
            return self.topic[WITH_ENCODER]
        return self.topic.get(TFIDF_ONLY)

    @property
    def needs_encoder(self) -> bool:
        return any(WITH_ENCODER in p for p in self.heads.values())
