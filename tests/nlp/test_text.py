from __future__ import annotations

import unicodedata

import pytest

from nlp.text import (
    decode_bytes,
    encode_legacy,
    is_vietnamese_syllable,
    normalize_text,
    normalize_tone_marks,
    repair_legacy,
    simple_tokenize,
    split_sentences,
    strip_diacritics,
    vietnamese_ratio,
    word_tokenize,
)

SAMPLE = (
    "Ủy ban nhân dân xã Thanh Hà, huyện Thanh Liêm tổ chức hội nghị về đất đai. Người dân bức xúc "
    'vì ô nhiễm nghiêm trọng ở Đồng Văn; ông Nguyễn Ưng nói: "Quá tệ!" Khuya, quốc, giường, khuỷu.'
)


def test_nfc_and_spaces():
    nfd = unicodedata.normalize("NFD", "Hòa  Mạc\u00a0 Duy Tiên")
    assert normalize_text(nfd) == "Hòa Mạc Duy Tiên"


@pytest.mark.parametrize(
    ("new", "old"),
    [
        ("hoà", "hòa"),
        ("thuỷ", "thủy"),
        ("khoẻ", "khỏe"),
        ("HOÀ BÌNH", "HÒA BÌNH"),
        ("Thuý", "Thúy"),
        ("hoàn", "hoàn"),
        ("quý", "quý"),
        ("giữa", "giữa"),
        ("người", "người"),
        ("khuỷu", "khuỷu"),
    ],
)
def test_tone_mark_placement(new, old):
    assert normalize_tone_marks(new) == old
    assert normalize_tone_marks(old) == old


def test_tone_mark_new_style():
    assert normalize_tone_marks("hòa thủy khỏe", style="new") == "hoà thuỷ khoẻ"


@pytest.mark.parametrize("encoding", ["tcvn3", "vni", "windows-1258"])
def test_legacy_bytes_are_detected_and_converted(encoding):
    text, detected = decode_bytes(encode_legacy(SAMPLE, encoding))
    assert detected == encoding
    assert text == SAMPLE


@pytest.mark.parametrize("encoding", ["tcvn3", "vni", "windows-1258"])
def test_legacy_text_shown_as_latin1_is_repaired(encoding):
    raw = encode_legacy(SAMPLE, encoding)
    shown = "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in raw)
    fixed, detected = repair_legacy(shown)
    assert detected == encoding
    assert fixed == SAMPLE


def test_utf8_mojibake_repaired():
    shown = "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in SAMPLE.encode("utf-8"))
    fixed, detected = repair_legacy(shown)
    assert (fixed, detected) == (SAMPLE, "utf-8-mojibake")


def test_unicode_and_foreign_text_left_alone():
    assert repair_legacy(SAMPLE) == (SAMPLE, None)
    assert repair_legacy("Crème brûlée à la française, naïve café")[1] is None


def test_known_tcvn3_and_vni_words():
    assert repair_legacy("Hµ Néi")[0] == "Hà Nội"
    assert repair_legacy("Thaønh phoá Phuû Lyù")[0] == "Thành phố Phủ Lý"


def test_syllables():
    assert is_vietnamese_syllable("nghiêng")
    assert not is_vietnamese_syllable("chýỡc")


def test_split_sentences_keeps_abbreviations():
    text = "Ông A nói. Bà B đến TP. Hồ Chí Minh lúc 5.30 sáng. Giá 5.000 đồng!\nDòng mới"
    assert split_sentences(text) == [
        "Ông A nói.",
        "Bà B đến TP. Hồ Chí Minh lúc 5.30 sáng.",
        "Giá 5.000 đồng!",
        "Dòng mới",
    ]


def test_split_sentences_bounds_length():
    parts = split_sentences("chữ " * 2000, max_len=500)
    assert all(len(p) <= 500 for p in parts)
    assert sum(len(p.split()) for p in parts) == 2000


def test_word_tokenize_underthesea_and_fallback():
    assert word_tokenize("Bác sĩ bây giờ có thể") == ["Bác sĩ", "bây giờ", "có thể"]
    garbage = "x" * 500 + " tai nạn"
    assert word_tokenize(garbage) == simple_tokenize(garbage)
    assert word_tokenize("   ") == []


def test_language_ratio_and_folding():
    assert vietnamese_ratio(SAMPLE) > 0.4
    assert vietnamese_ratio("The quick brown fox jumps over the lazy dog") == 0.0
    assert strip_diacritics("Đồng Văn") == "Dong Van"
