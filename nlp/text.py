"""Vietnamese text for nlp: sentences and words, plus the normalisation and legacy-encoding
repair of :mod:`vntext` (re-exported here, so nlp users have one text module).

Everything here is pure and offline. Word segmentation uses underthesea's bundled CRF model
(no download); if it fails on odd input, a regex syllable tokenizer takes over.

Examples
--------
>>> normalize_text("Hoà Mạc, thuỷ lợi")
'Hòa Mạc, thủy lợi'
>>> repair_legacy("Haø Noäi")[0]
'Hà Nội'
>>> split_sentences("Ông A nói. Bà B đến TP.HCM lúc 5 giờ. Xong!")
['Ông A nói.', 'Bà B đến TP.HCM lúc 5 giờ.', 'Xong!']
"""

from __future__ import annotations

import logging
import re

from vntext import (  # noqa: F401  (re-exported: the text API of nlp)
    TCVN3_DECODE,
    decode_bytes,
    decode_tcvn3,
    decode_vni,
    encode_legacy,
    is_vietnamese_syllable,
    normalize_text,
    normalize_tone_marks,
    repair_legacy,
    strip_diacritics,
    vietnamese_ratio,
    vietnamese_score,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Sentences and words
# ---------------------------------------------------------------------------------------------

_ABBREV = "TP|Tp|TT|ThS|TS|PGS|GS|BS|KS|CN|Th|St|Mr|Mrs|Dr|Co|Ltd|Inc|No|tr|Q|P|X|H|TX|KCN|UBND|ĐH"
_SENT_BREAK_RE = re.compile(r"[.!?…]+[\"”’)\]]*\s+(?=[\"“‘(\[]?[A-ZÀ-ỸĐ0-9])")
_FIXED_WIDTH_ABBREV = re.compile(r"\b(?:" + _ABBREV + r")\.$")


def split_sentences(text: str, max_len: int = 2000) -> list[str]:
    """Split news text into sentences (newlines, then ., !, ?, … before a capital or digit).

    Abbreviations such as ``TP.`` or ``PGS.`` do not end a sentence; pieces longer than
    ``max_len`` are cut at a comma or a space so no sentence is unbounded.
    """
    out: list[str] = []
    for para in text.split("\n"):
        para = para.strip()
        if not para:
            continue
        start = 0
        for m in _SENT_BREAK_RE.finditer(para):
            head = para[start : m.start() + len(m.group(0).rstrip())]
            if _FIXED_WIDTH_ABBREV.search(head):
                continue
            out.append(head.strip())
            start = m.end()
        tail = para[start:].strip()
        if tail:
            out.append(tail)
    result: list[str] = []
    for s in out:
        while len(s) > max_len:
            cut = s.rfind(", ", 0, max_len)
            if cut < max_len // 2:
                cut = s.rfind(" ", 0, max_len)
            if cut <= 0:
                cut = max_len
            result.append(s[:cut].strip())
            s = s[cut:].lstrip(", ")
        if s:
            result.append(s)
    return result


_TOKEN_RE = re.compile(r"\w+(?:[.,]\w+)*|[^\w\s]", re.UNICODE)


def simple_tokenize(text: str) -> list[str]:
    """Regex syllable tokenizer (the fallback of :func:`word_tokenize`).

    >>> simple_tokenize("Giá 5.000 đồng/kg, tăng!")
    ['Giá', '5.000', 'đồng', '/', 'kg', ',', 'tăng', '!']
    """
    return _TOKEN_RE.findall(text)


def word_tokenize(text: str, max_token_chars: int = 60) -> list[str]:
    """Vietnamese word segmentation with underthesea (syllables of a word joined by spaces).

    Falls back to :func:`simple_tokenize` when underthesea is missing or fails, or when the
    input holds a "word" longer than ``max_token_chars`` (URLs, base64, garbage), which the CRF
    handles badly and slowly.

    >>> word_tokenize("Bác sĩ bây giờ có thể")
    ['Bác sĩ', 'bây giờ', 'có thể']
    """
    if not text.strip():
        return []
    if any(len(t) > max_token_chars for t in text.split()):
        return simple_tokenize(text)
    try:
        from underthesea import word_tokenize as _uts_word_tokenize

        return list(_uts_word_tokenize(text))
    except Exception as exc:  # noqa: BLE001 - any failure of the segmenter: use the fallback
        log.warning("underthesea word_tokenize failed (%s); using the regex tokenizer", exc)
        return simple_tokenize(text)


def segment_for_features(text: str) -> str:
    """Lower-cased, word-segmented text with syllables of a word joined by ``_`` (model input)."""
    return " ".join(t.replace(" ", "_") for t in word_tokenize(text.lower()))
