"""A classifier for the public review/feedback sets (UIT-VSFC, UIT-ViSFD, VLSP 2016).

Used by the benchmark to report macro-F1 on those official test splits; not part of the news
model (review features did not help on news beyond noise: see the model card). Recipe: TF-IDF
word 1–3-grams on underthesea-segmented text + char 1–5-grams + length features, linear SVM with balanced class
weights, and a bias on the rare neutral class tuned on the official validation split only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC

from nlp.text import normalize_text, segment_for_features


def featurize_texts(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    norms = [normalize_text(t).lower() for t in texts]
    return [segment_for_features(t) for t in norms], norms


@dataclass
class ReviewClassifier:
    C: float = 0.3
    neutral_bias: float = 0.0
    word_vec: TfidfVectorizer = field(
        default_factory=lambda: TfidfVectorizer(
            ngram_range=(1, 3), sublinear_tf=True, token_pattern=r"\S+"
        )
    )
    char_vec: TfidfVectorizer = field(
        default_factory=lambda: TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 5), min_df=2, sublinear_tf=True
        )
    )
    clf: LinearSVC | None = None

    length_weight: float = 0.5  # chosen on VSFC val (0.5 / 1 / 2 within 0.001)

    def _x(self, segs: Sequence[str], norms: Sequence[str]) -> sparse.csr_matrix:
        n = np.array([len(s.split()) for s in segs], dtype=float)
        # short comments ("điểm .", "không !") are mostly neutral: length in a few dense columns
        length = np.c_[np.log1p(n) / 3, n <= 3, n <= 6, n >= 20] * self.length_weight
        return sparse.hstack(
            [
                self.word_vec.transform(segs),
                self.char_vec.transform(norms),
                sparse.csr_matrix(length),
            ]
        ).tocsr()

    def fit(
        self,
        segs: Sequence[str],
        norms: Sequence[str],
        labels: Sequence[str],
        val: tuple[Sequence[str], Sequence[str], Sequence[str]] | None = None,
    ) -> ReviewClassifier:
        self.word_vec.fit(segs)
        self.char_vec.fit(norms)
        self.clf = LinearSVC(C=self.C, class_weight="balanced").fit(self._x(segs, norms), labels)
        if val is not None and "neutral" in self.clf.classes_:
            d = self.clf.decision_function(self._x(val[0], val[1]))
            ni = list(self.clf.classes_).index("neutral")
            y = np.asarray(val[2])
            best = (f1_score(y, self.clf.classes_[d.argmax(1)], average="macro"), 0.0)
            for b in np.linspace(-1.0, 2.0, 31):
                dd = d.copy()
                dd[:, ni] += b
                f = f1_score(y, self.clf.classes_[dd.argmax(1)], average="macro")
                if f > best[0] + 1e-9:
                    best = (f, float(b))
            self.neutral_bias = best[1]
        return self

    def predict(self, segs: Sequence[str], norms: Sequence[str]) -> np.ndarray:
        assert self.clf is not None
        d = self.clf.decision_function(self._x(segs, norms))
        if "neutral" in self.clf.classes_:
            d[:, list(self.clf.classes_).index("neutral")] += self.neutral_bias
        return self.clf.classes_[d.argmax(1)]
