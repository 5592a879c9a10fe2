"""News sentiment and topic model (scikit-learn), trained on in-domain news.

Design (each step measured; see nlp/models/MODEL_CARD.md):

- input unit: headline + lead (the news-dev items), or an article split into title, lead and
  body sentences; text normalised (:mod:`nlp.text`) and word-segmented by underthesea;
- features: TF-IDF word 1–2-grams of the item, a separate TF-IDF of the headline (the
  headline foregrounds what the news is), char 1–5-grams, dense LSA vectors (TruncatedSVD)
  learned on the ~20k unlabelled news texts, and counts of a news polarity lexicon seeded by
  the annotation guideline and expanded through the LSA space of the unlabelled news;
- classifier: multinomial logistic regression with balanced class weights, then temperature
  scaling fitted on out-of-fold predictions, so the probabilities are calibrated;
- articles: the title + lead score and the body sentences' scores are aggregated (weighted);
  the sentences and phrases that pushed the label are returned as reasons.

The same features feed a 12-class topic classifier trained on news-dev's topic labels.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import minimize_scalar
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score
from sklearn.model_selection import StratifiedKFold

from nlp.errors import DataNotFoundError
from nlp.text import normalize_text, segment_for_features

LABELS = ("negative", "neutral", "positive")
TOPICS = (
    "land_construction",
    "land_disputes_complaints",
    "traffic_accidents",
    "environment_pollution",
    "health",
    "education",
    "public_services_admin",
    "security_order",
    "economy_investment",
    "agriculture",
    "disasters_weather",
    "culture_tourism",
)
TOPIC_NAMES_VI = {
    "land_construction": "Đất đai, xây dựng",
    "land_disputes_complaints": "Tranh chấp, khiếu nại đất đai",
    "traffic_accidents": "Giao thông, tai nạn",
    "environment_pollution": "Môi trường, ô nhiễm",
    "health": "Y tế",
    "education": "Giáo dục",
    "public_services_admin": "Hành chính công",
    "security_order": "An ninh trật tự",
    "economy_investment": "Kinh tế, đầu tư",
    "agriculture": "Nông nghiệp",
    "disasters_weather": "Thiên tai, thời tiết",
    "culture_tourism": "Văn hóa, du lịch",
}
# Seeds from the annotation guideline's definitions (not from the labelled items); the
# training expands them with the nearest words in the LSA space of the unlabelled news.
NEGATIVE_SEEDS = tuple(
    [
        "tai_nạn",
        "chết",
        "tử_vong",
        "bị_thương",
        "cháy",
        "khởi_tố",
        "bắt_giữ",
        "vi_phạm",
        "ô_nhiễm",
        "tham_nhũng",
        "lừa_đảo",
        "thiệt_hại",
        "bức_xúc",
        "chậm_tiến_độ",
        "sai_phạm",
        "xử_phạt",
        "ngập",
        "sạt_lở",
        "dịch_bệnh",
        "nguy_kịch",
        "thua_lỗ",
        "trái_phép",
        "khiếu_nại",
        "tranh_chấp",
        "hư_hỏng",
        "thiếu",
        "lo_ngại",
        "thoát_chết",
        "mất_mùa",
        "giá_rớt",
    ]
)
POSITIVE_SEEDS = tuple(
    [
        "khánh_thành",
        "thông_xe",
        "tăng_trưởng",
        "thành_công",
        "hoàn_thành",
        "khen_thưởng",
        "xuất_viện",
        "giải_cứu",
        "kỷ_lục",
        "hiệu_quả",
        "vượt",
        "cải_thiện",
        "thuận_lợi",
        "được_mùa",
        "lợi_nhuận",
        "khỏi_bệnh",
        "rút_ngắn",
        "trao_tặng",
    ]
)

# function words, times and units: never shown alone as the reason for a label
_WEAK_WORDS = frozenset(
    [
        "và",
        "của",
        "là",
        "có",
        "được",
        "cho",
        "các",
        "những",
        "một",
        "với",
        "trong",
        "tại",
        "khi",
        "đã",
        "sẽ",
        "đang",
        "này",
        "đó",
        "theo",
        "về",
        "từ",
        "đến",
        "lúc",
        "giờ",
        "sáng",
        "chiều",
        "tối",
        "ngày",
        "tháng",
        "năm",
        "hôm",
        "qua",
        "nay",
        "người",
        "ông",
        "bà",
        "anh",
        "chị",
        "em",
        "ở",
        "trên",
        "dưới",
        "vào",
        "ra",
        "bị",
        "do",
        "để",
        "thì",
        "mà",
        "như",
        "nhiều",
        "ít",
        "hơn",
        "rất",
        "cũng",
        "vẫn",
        "còn",
        "nhưng",
        "nên",
        "không",
        "chưa",
        "phải",
        "đồng",
        "tỷ",
        "triệu",
        "nghìn",
        "ngàn",
        "tp",
        "tỉnh",
        "huyện",
        "xã",
        "phường",
        "thành",
        "phố",
        "thị",
    ]
)

# Function words (segmented forms, "_" joins syllables): a reason phrase never starts or ends
# with one (". sau" -> nothing, "tôm và" -> "tôm", "sẽ xuất hiện" -> "xuất hiện"), and a phrase
# made only of these and _WEAK_WORDS is no reason at all. Negations are kept at the start
# ("không an toàn" must not become "an toàn"). Includes common forms typed without diacritics.
_FUNCTION_WORDS_TEXT = """và của là có được cho các những một với trong tại khi đã sau trước này đó thì mà cũng
    về từ theo đến ra vào lên xuống nên nhưng hay hoặc để do bị rất lại còn đang sẽ vẫn như
    nơi việc ngày năm tháng giờ ở trên dưới qua cùng nhiều ít hơn nhất đều chỉ mới vừa rồi nữa
    thế vậy gì nào ai đây kia ấy họ chúng tôi ta bạn anh chị em ông bà phải vì nếu tuy dù bởi
    nhằm đối rằng nó mình cả mọi mỗi từng cái con chiếc sự cuộc số lần hai ba bốn sáu bảy
    tám chín mười trăm gần khoảng thêm luôn lúc hiện nay hôm đã_từng nhé nha ạ à ơi ư hả
    thôi lắm quá chứ đấy đâu sao đối_với sau_khi trước_khi trong_khi vì_vậy do_đó tuy_nhiên
    bởi_vì cho_nên hiện_nay hôm_nay hôm_qua vừa_qua thế_nào như_thế_nào bao_nhiêu chúng_tôi
    chúng_ta các_bạn mọi_người trong_đó theo_đó bên_cạnh ngoài_ra đồng_thời cũng_như
    va cua duoc dc đc nhung voi thi cung nen roi nua vay vs nhe oi ak lun thoi mk mik j
"""
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())
_NEGATIONS_TEXT = "không chưa chẳng chả đừng chớ ko k kg kh hok khong chua chang cha hông khum"
_NEGATIONS = frozenset(_NEGATIONS_TEXT.split())
# lone words that say nothing as a reason even when not function words
_VAGUE_TEXT = "làm gây khá cần muốn tự sắp đủ hết tính bước mức đi độ"
_VAGUE_WORDS = frozenset(_VAGUE_TEXT.split())


def _is_symbol(token: str) -> bool:
    return not any(ch.isalnum() for ch in token)


def _is_function(token: str) -> bool:
    """A function word, or a lone letter (an abbreviation cut off: "độ c", "phớ dài t")."""
    return token.lower() in _FUNCTION_WORDS or len(token) == 1


def _is_weak(token: str) -> bool:
    low = token.lower()
    if low in _FUNCTION_WORDS or low in _NEGATIONS or low in _VAGUE_WORDS:
        return True
    if not any(ch.isalpha() for ch in low):  # numbers, percentages, symbols
        return True
    return all(w in _WEAK_WORDS or w in _FUNCTION_WORDS for w in low.split("_"))


def clean_reason_phrase(phrase: object) -> str | None:
    """A reason phrase a reader can use, or None.

    ``phrase`` is a word n-gram as the TF-IDF vocabulary holds it (segmented: ``ô_nhiễm``,
    punctuation as tokens). Punctuation splits it (an n-gram across a comma or a full stop is
    two fragments: the longest readable one is kept); function words are dropped at both
    ends, negations only at the end; what is left must hold a content word.

    >>> [clean_reason_phrase(p) for p in (". sau", "bắc_ninh ,", "( hà_nội", "tôm và")]
    [None, 'bắc ninh', 'hà nội', 'tôm']
    >>> [clean_reason_phrase(p) for p in ("không an_toàn", "sẽ xuất_hiện", "vì nó", "2 người")]
    ['không an toàn', 'xuất hiện', None, None]
    >>> [clean_reason_phrase(p) for p in ("k tốt", "tốt lắm", "độ c", "bị_thương nặng")]
    ['k tốt', 'tốt', None, 'bị thương nặng']
    """
    if not isinstance(phrase, str):
        return None
    runs: list[list[str]] = [[]]
    for token in phrase.split():
        if _is_symbol(token) or token in ("_",):
            runs.append([])
        else:
            runs[-1].append(token.strip("_"))
    best: list[str] | None = None
    for run in runs:
        run = [t for t in run if t]
        while (
            run
            and run[0].lower() not in _NEGATIONS
            and (_is_function(run[0]) or not any(ch.isalpha() for ch in run[0]))
        ):
            run.pop(0)
        while run and (
            _is_function(run[-1])
            or run[-1].lower() in _NEGATIONS
            or not any(ch.isalpha() for ch in run[-1])
        ):
            run.pop()
        if not run or all(_is_weak(t) for t in run):
            continue
        if best is None or len(run) > len(best):
            best = run
    if best is None:
        return None
    return " ".join(t.replace("_", " ") for t in best)


def add_reason_phrase(out: list[str], phrase: object, cleaned: bool = False) -> bool:
    """Append the cleaned ``phrase`` to ``out`` unless it adds nothing (empty, a duplicate, or
    the same words as a phrase already there, inside it or around it); True if appended.

    ``cleaned``: ``phrase`` is already a cleaned reason (spaces between syllables, its word
    segmentation lost): only checked for letters and repeats, not cleaned again (cleaning
    "bị thương" syllable by syllable would leave "thương")."""
    if cleaned:
        clean = " ".join(phrase.split()) if isinstance(phrase, str) else None
        if not clean or not any(ch.isalpha() for ch in clean):
            return False
    else:
        clean = clean_reason_phrase(phrase)
    if clean is None:
        return False
    padded = f" {clean.lower()} "
    for o in out:
        other = f" {o.lower()} "
        if padded in other or other in padded:
            return False
    out.append(clean)
    return True


def join_adjacent_phrases(
    phrases: list[str], texts: list[str], max_syllables: int = 5
) -> list[str]:
    """Reason phrases that stand next to each other in the text, joined into one.

    A head's strongest features are often single syllables ("tắc", "đường"); shown apart they
    read as noise, joined as the text has them they read as "tắc đường". Joins never cross
    punctuation and stop at ``max_syllables``; the joined phrase takes the first one's place.

    >>> join_adjacent_phrases(["đường", "tắc", "giao", "nút", "mưa"],
    ...                       ["Tắc đường kéo dài ở nút giao, mưa to."])
    ['tắc đường', 'nút giao', 'mưa']
    >>> join_adjacent_phrases(["lịch", "điện", "cắt"], ["Lịch cắt điện ngày mai?"])
    ['lịch cắt điện']
    >>> join_adjacent_phrases(["mưa", "to"], ["trời mưa. to quá"])
    ['mưa', 'to']
    """
    runs = [
        " " + " ".join(part.split()) + " "
        for t in texts
        for part in re.split(r"[^\w\s]+", t.lower())
        if part.strip()
    ]
    out = list(phrases)
    joined = True
    while joined:
        joined = False
        for i, a in enumerate(out):
            for j, b in enumerate(out):
                if i == j or len(a.split()) + len(b.split()) > max_syllables:
                    continue
                pair = f" {a.lower()} {b.lower()} "
                if any(pair in r for r in runs):
                    out[i] = f"{a} {b}"
                    del out[j]
                    joined = True
                    break
            if joined:
                break
    return out


_HEAD_RE = re.compile(r"[.!?…]\s")


def split_headline(text: str) -> tuple[str, str]:
    """(headline, rest) of a headline + lead item: the headline ends at the first sentence end."""
    m = _HEAD_RE.search(text)
    if not m:
        return text, ""
    return text[: m.start() + 1], text[m.end() :]


@dataclass
class ModelConfig:
    """Which modelling steps are on (all measured in the model card)."""

    char_ngrams: bool = True
    headline_features: bool = True
    lsa_components: int = 300
    lsa_max_features: int = 15000
    lexicon: bool = True  # measured in CV: +0.008 macro-F1 (see the model card)
    lexicon_expand: int = 60
    self_training_fraction: float = 0.0  # share of unlabelled texts added with pseudo-labels
    self_training_weight: float = 0.3
    C: float = 10.0
    calibrate: bool = True
    headline_weight: float = 0.5  # article aggregation: title+lead vs body sentences
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Item:
    """A text to score, split into headline, lead and body."""

    title: str = ""
    lead: str = ""
    body: str = ""

    @property
    def head_text(self) -> str:
        return " ".join(x for x in (self.title, self.lead) if x).strip()


@dataclass
class NewsModel:
    """The fitted sentiment + topic model (what the joblib file holds)."""

    config: ModelConfig
    version: str = "unfitted"
    meta: dict[str, Any] = field(default_factory=dict)
    word_vec: TfidfVectorizer | None = None
    head_vec: TfidfVectorizer | None = None
    char_vec: TfidfVectorizer | None = None
    lsa_vec: TfidfVectorizer | None = None
    lsa_terms: np.ndarray | None = None  # (n_terms, k) float32 term vectors = svd.components_.T
    neg_lexicon: frozenset[str] = frozenset()
    pos_lexicon: frozenset[str] = frozenset()
    sentiment_clf: LogisticRegression | None = None
    temperature: float = 1.0
    topic_clf: LogisticRegression | None = None

    # ---------------------------------------------------------------- storage
    def __getstate__(self) -> dict[str, Any]:
        """Pickle the LSA term vectors as int8 with one scale per dimension (4x smaller)."""
        state = dict(self.__dict__)
        state.pop("_word_names", None)  # a cache
        terms = state.pop("lsa_terms")
        if terms is not None:
            scale = np.abs(terms).max(axis=0) / 127.0 + 1e-12
            state["lsa_terms_int8"] = np.round(terms / scale).astype(np.int8)
            state["lsa_terms_scale"] = scale.astype(np.float32)
        else:
            state["lsa_terms_int8"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        q = state.pop("lsa_terms_int8", None)
        scale = state.pop("lsa_terms_scale", None)
        state["lsa_terms"] = (
            None if q is None else (q.astype(np.float32) * scale).astype(np.float32)
        )
        self.__dict__.update(state)

    # ---------------------------------------------------------------- features
    def _lsa(self, segs: Sequence[str]) -> np.ndarray:
        assert self.lsa_vec is not None and self.lsa_terms is not None
        z = np.asarray(self.lsa_vec.transform(segs) @ self.lsa_terms, dtype=np.float32)
        z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-9
        return z

    def _lex(self, segs: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(segs), 2), dtype=np.float32)
        for i, s in enumerate(segs):
            toks = s.split()
            out[i, 0] = np.log1p(sum(t in self.neg_lexicon for t in toks))
            out[i, 1] = np.log1p(sum(t in self.pos_lexicon for t in toks))
        return out

    def features(
        self, segs: Sequence[str], head_segs: Sequence[str], norms: Sequence[str]
    ) -> sparse.csr_matrix:
        cfg = self.config
        assert self.word_vec is not None
        blocks = [self.word_vec.transform(segs)]
        if cfg.headline_features and self.head_vec is not None:
            blocks.append(self.head_vec.transform(head_segs))
        if cfg.char_ngrams and self.char_vec is not None:
            blocks.append(self.char_vec.transform(norms))
        if cfg.lsa_components and self.lsa_terms is not None:
            blocks.append(sparse.csr_matrix(self._lsa(segs)))
            if cfg.headline_features:
                blocks.append(sparse.csr_matrix(self._lsa(head_segs)))
        if cfg.lexicon and self.neg_lexicon:
            blocks.append(sparse.csr_matrix(np.hstack([self._lex(segs), self._lex(head_segs)])))
        return sparse.hstack(blocks).tocsr()

    def topic_features(self, x: sparse.csr_matrix) -> sparse.csr_matrix:
        """The topic classifier's columns: word n-grams and LSA (not the char n-grams)."""
        assert self.word_vec is not None
        n_word = len(self.word_vec.vocabulary_)
        cols = np.arange(x.shape[1])
        keep = cols < n_word
        if self.config.lsa_components and self.lsa_terms is not None:
            n_lsa = self.lsa_terms.shape[1] * (2 if self.config.headline_features else 1)
            start = self._lsa_offset()
            keep |= (cols >= start) & (cols < start + n_lsa)
        return x[:, cols[keep]]

    def _lsa_offset(self) -> int:
        assert self.word_vec is not None
        off = len(self.word_vec.vocabulary_)
        if self.config.headline_features and self.head_vec is not None:
            off += len(self.head_vec.vocabulary_)
        if self.config.char_ngrams and self.char_vec is not None:
            off += len(self.char_vec.vocabulary_)
        return off

    # ---------------------------------------------------------------- prediction
    def _proba(self, x: sparse.csr_matrix) -> np.ndarray:
        assert self.sentiment_clf is not None
        logits = self.sentiment_clf.decision_function(x) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict_units(
        self, texts: Sequence[str], segs: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray, sparse.csr_matrix]:
        """Sentiment probabilities (columns in LABELS order) and topic probabilities of
        headline+lead style units; also returns the feature matrix (for reasons)."""
        norms = [t.lower() for t in texts]
        if segs is None:
            segs = [segment_for_features(t) for t in texts]
        heads = [split_headline(s)[0] for s in segs]
        x = self.features(segs, heads, norms)
        p = self._proba(x)
        p = p[:, [list(self.sentiment_clf.classes_).index(lab) for lab in LABELS]]
        topics = (
            self.topic_clf.predict_proba(self.topic_features(x))
            if self.topic_clf is not None
            else np.zeros((len(texts), 0))
        )
        return p, topics, x

    def phrase_reasons(self, x_row: sparse.csr_matrix, label: str, k: int = 5) -> list[str]:
        """n-grams of one unit that pushed it towards ``label`` (coefficient × feature value)."""
        clf = self.sentiment_clf
        assert clf is not None and self.word_vec is not None
        ci = list(clf.classes_).index(label)
        coef = clf.coef_[ci] - clf.coef_.mean(axis=0)
        n_word = len(self.word_vec.vocabulary_)
        row = x_row.tocsr()
        idx, vals = row.indices, row.data
        contrib = [(coef[j] * v, j) for j, v in zip(idx, vals, strict=True) if j < n_word]
        contrib.sort(reverse=True)
        names = self.__dict__.get("_word_names")
        if names is None:
            names = self.__dict__["_word_names"] = self.word_vec.get_feature_names_out()
        out: list[str] = []
        if self.config.lexicon:  # lexicon words of the label present in the unit come first
            lex = (
                self.neg_lexicon
                if label == "negative"
                else self.pos_lexicon
                if label == "positive"
                else ()
            )
            for j in idx:
                if j < n_word and " " not in names[j] and names[j] in lex:
                    add_reason_phrase(out, names[j])
        for c, j in contrib:
            if c <= 0 or len(out) >= k:
                break
            # punctuation, numbers and function words are not reasons a reader can use:
            # cleaned at the edges, dropped when nothing readable is left, no repeats
            add_reason_phrase(out, names[j])
        return out[:k]


def _temperature(logits: np.ndarray, y_idx: np.ndarray) -> float:
    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y_idx)), y_idx].mean())

    res = minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded")
    return float(res.x)


def expand_lexicon(
    seeds: Sequence[str], vocab: dict[str, int], terms: np.ndarray, k: int
) -> set[str]:
    """Seeds plus the ``k`` single words nearest to the seeds' centroid in LSA space."""
    idx = [vocab[s] for s in seeds if s in vocab]
    if not idx or k <= 0:
        return set(seeds)
    t = terms / (np.linalg.norm(terms, axis=1, keepdims=True) + 1e-9)
    sims = t @ t[idx].mean(axis=0)
    inv = {i: w for w, i in vocab.items()}
    near = [inv[i] for i in np.argsort(-sims)[: 3 * k] if " " not in inv[i]][:k]
    return set(seeds) | set(near)


@dataclass
class Corpus:
    """Normalised and segmented texts of the training data."""

    texts: list[str]
    segs: list[str]
    labels: np.ndarray | None = None
    topics: np.ndarray | None = None
    ids: list[str] | None = None
    weights: np.ndarray | None = None


def prepare(texts: Sequence[str], **kw: Any) -> Corpus:
    norms = [normalize_text(t) for t in texts]
    return Corpus(norms, [segment_for_features(t) for t in norms], **kw)


def fit_unsupervised(model: NewsModel, unlabelled: Corpus, labelled: Corpus) -> None:
    """LSA term vectors and the expanded lexicon from unlabelled news (no labels used)."""
    cfg = model.config
    if cfg.lsa_components:
        vec = TfidfVectorizer(
            ngram_range=(1, 2),
            min_df=2,
            sublinear_tf=True,
            token_pattern=r"\S+",
            max_features=cfg.lsa_max_features,
            dtype=np.float32,
        )
        xu = vec.fit_transform(unlabelled.segs + labelled.segs)
        svd = TruncatedSVD(cfg.lsa_components, random_state=cfg.seed).fit(xu)
        model.lsa_vec = vec
        model.lsa_terms = svd.components_.T.astype(np.float32)
    if cfg.lexicon:
        if model.lsa_terms is not None and cfg.lexicon_expand:
            neg = expand_lexicon(
                NEGATIVE_SEEDS, model.lsa_vec.vocabulary_, model.lsa_terms, cfg.lexicon_expand
            )
            pos = expand_lexicon(
                POSITIVE_SEEDS, model.lsa_vec.vocabulary_, model.lsa_terms, cfg.lexicon_expand
            )
        else:
            neg, pos = set(NEGATIVE_SEEDS), set(POSITIVE_SEEDS)
        both = neg & pos
        model.neg_lexicon = frozenset(neg - both)
        model.pos_lexicon = frozenset(pos - both)


def fit_vectorizers(model: NewsModel, train: Corpus) -> NewsModel:
    """Fit the item, headline and character TF-IDF vocabularies on labelled items (no labels used)."""
    cfg = model.config
    heads = [split_headline(s)[0] for s in train.segs]
    norms = [t.lower() for t in train.texts]
    model.word_vec = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+", dtype=np.float32
    ).fit(train.segs)
    if cfg.headline_features:
        model.head_vec = TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+", dtype=np.float32
        ).fit(heads)
    if cfg.char_ngrams:
        model.char_vec = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(1, 5),
            min_df=2,
            sublinear_tf=True,
            max_features=60000,
            dtype=np.float32,
        ).fit(norms)
    return model


def fit_supervised(model: NewsModel, train: Corpus, unlabelled: Corpus | None = None) -> NewsModel:
    """Fit vectorizers and classifiers on labelled items (LSA/lexicon must already be fitted)."""
    cfg = model.config
    heads = [split_headline(s)[0] for s in train.segs]
    norms = [t.lower() for t in train.texts]
    fit_vectorizers(model, train)
    x = model.features(train.segs, heads, norms)
    y = train.labels
    w = train.weights if train.weights is not None else np.ones(len(y))
    clf = LogisticRegression(C=cfg.C, max_iter=3000, class_weight="balanced")
    clf.fit(x, y, sample_weight=w)
    if cfg.self_training_fraction > 0 and unlabelled is not None and unlabelled.segs:
        uheads = [split_headline(s)[0] for s in unlabelled.segs]
        xu = model.features(unlabelled.segs, uheads, [t.lower() for t in unlabelled.texts])
        pu = clf.predict_proba(xu)
        keep = np.argsort(-pu.max(axis=1))[: int(cfg.self_training_fraction * len(unlabelled.segs))]
        x = sparse.vstack([x, xu[keep]]).tocsr()
        y = np.concatenate([y, clf.classes_[pu[keep].argmax(axis=1)]])
        w = np.concatenate([w, np.full(len(keep), cfg.self_training_weight)])
        clf = LogisticRegression(C=cfg.C, max_iter=3000, class_weight="balanced").fit(
            x[: len(y)], y, sample_weight=w
        )
    model.sentiment_clf = clf
    if train.topics is not None:
        mask = np.array([t in TOPICS for t in train.topics])
        xt = model.topic_features(model.features(train.segs, heads, norms))[mask]
        model.topic_clf = LogisticRegression(C=cfg.C, max_iter=3000, class_weight="balanced").fit(
            xt, train.topics[mask]
        )
        model.topic_clf.coef_ = model.topic_clf.coef_.astype(np.float32)
    model.sentiment_clf.coef_ = model.sentiment_clf.coef_.astype(np.float32)
    for vec in (model.word_vec, model.head_vec, model.char_vec):
        if vec is not None and hasattr(vec, "stop_words_"):
            vec.stop_words_ = None  # pruned-term set: not needed to transform, large to pickle
    return model


def _oof_logits(
    cfg: ModelConfig, data: Corpus, unlabelled: Corpus, base: NewsModel, folds: int = 5
) -> np.ndarray:
    """Out-of-fold decision values (columns in LABELS order) for temperature scaling."""
    logits = np.zeros((len(data.segs), len(LABELS)))
    skf = StratifiedKFold(folds, shuffle=True, random_state=cfg.seed + 1)
    for tr, te in skf.split(data.segs, data.labels):
        m = _clone_unsupervised(base)
        fit_supervised(m, _subset(data, tr), unlabelled)
        sub = _subset(data, te)
        heads = [split_headline(s)[0] for s in sub.segs]
        x = m.features(sub.segs, heads, [t.lower() for t in sub.texts])
        d = m.sentiment_clf.decision_function(x)
        logits[te] = d[:, [list(m.sentiment_clf.classes_).index(lab) for lab in LABELS]]
    return logits


def _clone_unsupervised(base: NewsModel) -> NewsModel:
    return NewsModel(
        config=base.config,
        lsa_vec=base.lsa_vec,
        lsa_terms=base.lsa_terms,
        neg_lexicon=base.neg_lexicon,
        pos_lexicon=base.pos_lexicon,
    )


def _subset(c: Corpus, idx: np.ndarray) -> Corpus:
    return Corpus(
        [c.texts[i] for i in idx],
        [c.segs[i] for i in idx],
        c.labels[idx] if c.labels is not None else None,
        c.topics[idx] if c.topics is not None else None,
        [c.ids[i] for i in idx] if c.ids is not None else None,
        c.weights[idx] if c.weights is not None else None,
    )


def train_model(
    train: Corpus,
    unlabelled: Corpus,
    config: ModelConfig | None = None,
    version: str | None = None,
    meta: dict[str, Any] | None = None,
) -> NewsModel:
    """Fit the whole model: unsupervised parts, classifiers, then temperature calibration."""
    cfg = config or ModelConfig()
    model = NewsModel(config=cfg)
    fit_unsupervised(model, unlabelled, train)
    base = _clone_unsupervised(model)
    fit_supervised(model, train, unlabelled)
    if cfg.calibrate:
        logits = _oof_logits(cfg, train, unlabelled, base)
        y_idx = np.array([LABELS.index(lab) for lab in train.labels])
        model.temperature = _temperature(logits, y_idx)
    model.version = version or dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    model.meta = dict(meta or {})
    return model


# ------------------------------------------------------------------------------------- data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_news_dev(data_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(labelled items, unlabelled items) of ``<data_dir>/sentiment/news-dev``."""
    folder = Path(data_dir) / "sentiment" / "news-dev"
    lab, unl = folder / "news_sentiment_dev.jsonl", folder / "unlabelled.jsonl"
    for p in (lab, unl):
        if not p.exists():
            raise DataNotFoundError(
                f"news-dev file {p} does not exist (is --data-dir the shared data folder?)"
            )
    return read_jsonl(lab), read_jsonl(unl)


def frozen_reference_ids(items: Sequence[dict[str, Any]], share: float = 0.2) -> list[str]:
    """The frozen reference set for retraining: a fixed, hash-based 20 % of news-dev ids.

    Membership depends only on each id (sha256), so it never changes when data is added.
    """
    out = []
    for it in items:
        h = int(hashlib.sha256(str(it["id"]).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        if h < share:
            out.append(str(it["id"]))
    return out


def ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def evaluate(model: NewsModel, corpus: Corpus) -> dict[str, float]:
    p, _, _ = model.predict_units(corpus.texts, corpus.segs)
    pred = np.array(LABELS)[p.argmax(axis=1)]
    return scores(corpus.labels, pred)


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "macro_f1": round(float(f1_score(y, pred, average="macro", labels=list(LABELS))), 4),
        "negative_recall": round(
            float(recall_score(y, pred, labels=["negative"], average=None)[0]), 4
        ),
        "accuracy": round(float(np.mean(y == pred)), 4),
        "n": int(len(y)),
    }


def cross_validate(
    labelled: Corpus,
    unlabelled: Corpus,
    config: ModelConfig,
    folds: int = 10,
    seed: int = 0,
    base: NewsModel | None = None,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Stratified k-fold CV on labelled news: each item is predicted by a model that never saw
    it (LSA/lexicon come from the unlabelled texts only). Returns sentiment and topic scores."""
    if base is None:
        base = NewsModel(config=config)
        fit_unsupervised(base, unlabelled, Corpus([], []))
    pred = np.empty(len(labelled.segs), dtype=object)
    tpred = np.empty(len(labelled.segs), dtype=object)
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for tr, te in skf.split(labelled.segs, labelled.labels):
        m = _clone_unsupervised(base)
        m.config = config
        fit_supervised(m, _subset(labelled, tr), unlabelled)
        sub = _subset(labelled, te)
        p, t, _ = m.predict_units(sub.texts, sub.segs)
        pred[te] = np.array(LABELS)[p.argmax(axis=1)]
        if m.topic_clf is not None:
            tpred[te] = m.topic_clf.classes_[t.argmax(axis=1)]
    out: dict[str, Any] = {"sentiment": scores(labelled.labels, pred)}
    if return_predictions:
        out["predictions"] = pred
    if labelled.topics is not None:
        out["topic"] = {
            "macro_f1": round(float(f1_score(labelled.topics, tpred, average="macro")), 4),
            "accuracy": round(float(np.mean(labelled.topics == tpred)), 4),
        }
    return out
