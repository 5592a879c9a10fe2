"""The phrase reasons of ``ioc nlp score`` are readable Vietnamese: no punctuation or number at
either end, no lone function word, each phrase once (issue 11: ". sau" was shown as a reason).
Checked on the cleaner itself and on real-looking news and posts through the shipped model."""

from __future__ import annotations

import re

import pytest

from nlp.digest import STOPWORDS, clean_tag
from nlp.scoring import load_scorer
from nlp.sentiment import _FUNCTION_WORDS, add_reason_phrase, clean_reason_phrase
from nlp.settings import DEFAULT_MODEL_DIR


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (". sau", None),
        (", bệnh_nhân", "bệnh nhân"),
        ("( hà_nội", "hà nội"),
        ("hà_nội )", "hà nội"),
        ("bắc_ninh , hà_nam", "bắc ninh"),  # across a comma: the first readable fragment
        ("thông_tin ,", "thông tin"),
        ("tôm và", "tôm"),
        ("và cá_tra", "cá tra"),
        ("hà_nội đã", "hà nội"),
        ("sẽ xuất_hiện", "xuất hiện"),
        ("vì nó", None),
        ("đối_với", None),
        ("như_thế_nào", None),
        ("sau_khi", None),
        ("%", None),
        ("2 người", None),
        ("lớp 12", "lớp"),
        ("không an_toàn", "không an toàn"),  # a negation at the start keeps its meaning
        ("chưa xử_lý", "chưa xử lý"),
        ("an_toàn không", "an toàn"),
        ("ko tốt", "ko tốt"),
        ("bị_thương nặng", "bị thương nặng"),  # a compound is one word, not "bị" + "thương"
        ("cháy lớn .", "cháy lớn"),
        ("hàng tốt lắm", "hàng tốt"),
        ("ngập", "ngập"),
        (None, None),
        ("", None),
    ],
)
def test_clean_reason_phrase(raw, clean):
    assert clean_reason_phrase(raw) == clean


def test_add_reason_phrase_keeps_each_reading_once():
    out: list[str] = []
    for p in ("ô_nhiễm", "ô_nhiễm .", "ô_nhiễm môi_trường", "môi_trường", ". sau", "bức_xúc"):
        add_reason_phrase(out, p)
    # the longer phrase repeats "ô nhiễm": skipped; "môi trường" alone is a new reading
    assert out == ["ô nhiễm", "môi trường", "bức xúc"]
    # already-clean phrases (segmentation lost) are not cut syllable by syllable
    out = []
    assert add_reason_phrase(out, "bị thương", cleaned=True) and out == ["bị thương"]
    assert not add_reason_phrase(out, "bị thương", cleaned=True)
    assert not add_reason_phrase(out, " , ", cleaned=True)


ARTICLES = [
    {
        "title": "Cháy lớn tại xưởng gỗ ở Duy Tiên (Hà Nam), thiệt hại hàng tỷ đồng",
        "lead": "Sau khi ngọn lửa bùng phát lúc 3 giờ sáng, lực lượng PCCC đã có mặt.",
        "text": "Đám cháy thiêu rụi 2.000 m2 nhà xưởng. Không có thương vong về người. "
        "Nguyên nhân vụ cháy đang được cơ quan chức năng (Công an tỉnh) điều tra làm rõ.",
    },
    {
        "title": "Xe tải tông xe máy trên QL1A, hai người bị thương nặng",
        "lead": "Vụ tai nạn xảy ra chiều 12/3 tại đoạn qua phường Đồng Văn, thị xã Duy Tiên.",
        "text": "Theo nhân chứng, xe tải chạy với tốc độ cao rồi va chạm với xe máy. "
        "Hai nạn nhân được đưa đi cấp cứu tại Bệnh viện Bạch Mai (Hà Nội).",
    },
    {
        "title": "Hà Nam khánh thành cầu mới, người dân phấn khởi",
        "lead": "Cây cầu dài 300 m được đưa vào sử dụng sớm hơn kế hoạch 2 tháng.",
        "text": "Theo UBND tỉnh, công trình giúp rút ngắn thời gian đi lại cho hàng nghìn hộ dân. "
        "Tổng vốn đầu tư hơn 120 tỷ đồng, đạt 100% kế hoạch.",
    },
    {
        "title": "Người dân bức xúc vì rác thải ùn ứ, bốc mùi ở Kim Bảng",
        "lead": "Hàng chục tấn rác tồn đọng nhiều ngày, chưa được thu gom, xử lý.",
        "text": "Theo phản ánh của người dân, tình trạng này kéo dài từ đầu tháng. "
        "Lãnh đạo xã cho biết sẽ làm việc với đơn vị thu gom để xử lý dứt điểm.",
    },
    {
        "title": "Tỉnh họp bàn kế hoạch tuyển sinh lớp 10 năm học 2026-2027",
        "lead": "Sở Giáo dục và Đào tạo công bố lịch thi, chỉ tiêu của các trường THPT.",
        "text": "Kỳ thi dự kiến diễn ra vào tháng 6. Thí sinh đăng ký trực tuyến.",
    },
]
POSTS = [
    "đường làng em ngập hết rồi, mấy hôm nay không ai xử lý gì cả",
    "cảm ơn phường đã sửa đèn đường nhanh quá, tối đi lại yên tâm",
    "rac thai do bua bai ven song, hoi thoi kinh khung",
    "Hàng giao nhanh, đóng gói cẩn thận, sẽ ủng hộ shop tiếp 😍",
    "xe tải chạy ầm ầm cả đêm, bụi mù mịt, dân bị thương vì ổ gà mà không ai sửa",
    "ko biết bao giờ mới làm xong cái cầu này, đi vòng mệt quá!!!",
]


# words that begin or end no readable phrase of their own ("tôm và", "hà nội đã", "và cá tra")
NEVER_AT_THE_ENDS = {"và", "của", "đã", "sẽ", "với", "các", "những", "là", "thì", "mà", "để"}


@pytest.mark.skipif(
    not list(DEFAULT_MODEL_DIR.glob("sentiment-*.joblib")), reason="no shipped model"
)
@pytest.mark.parametrize("use_encoder", [False, True], ids=["tfidf", "encoder"])
def test_score_output_reasons_are_readable_phrases(use_encoder):
    scorer = load_scorer(use_ner=False, use_encoder=use_encoder)
    records = [{"id": f"a{i}", **a} for i, a in enumerate(ARTICLES)]
    records += [{"id": f"p{i}", "text": t} for i, t in enumerate(POSTS)]
    out = scorer.score_records(records)
    # each record's text with punctuation as breaks ("|"): a join never crosses it
    rec_text = {
        r["id"]: " | ".join(
            " ".join(part.split())
            for k in ("title", "lead", "text")
            for part in re.split(r"[^\w\s]+", str(r.get(k, "")))
            if part.strip()
        )
        for r in records
    }
    shown = 0
    for rec in out:
        phrases = [r["text"] for r in rec["sentiment"]["reasons"] if r["kind"] == "phrase"]
        assert len(phrases) <= 6
        for p in phrases:
            tokens = p.split()
            assert tokens, rec["id"]
            for edge in (tokens[0], tokens[-1]):
                assert any(ch.isalpha() for ch in edge), f"{rec['id']}: {p!r} ends in {edge!r}"
            assert all(any(ch.isalnum() for ch in t) for t in tokens), f"{rec['id']}: {p!r}"
            assert not (len(tokens) == 1 and (p in _FUNCTION_WORDS or p in STOPWORDS)), (
                f"{rec['id']}: lone function word {p!r}"
            )
            assert tokens[0] not in NEVER_AT_THE_ENDS and tokens[-1] not in NEVER_AT_THE_ENDS, (
                f"{rec['id']}: {p!r}"
            )
            assert clean_tag(p) == p, f"{rec['id']}: the digest would drop or trim {p!r}"
        lowered = [f" {p.lower()} " for p in phrases]
        for i, a in enumerate(lowered):
            for b in lowered[i + 1 :]:
                assert a not in b and b not in a, f"{rec['id']}: repeated {a!r} / {b!r}"
        # neighbours in the text are one phrase ("tắc đường", not "tắc" and "đường")
        source = rec_text[rec["id"]].lower()
        for a in phrases:
            for b in phrases:
                if a != b and len(a.split()) + len(b.split()) <= 5:
                    assert f" {a.lower()} {b.lower()} " not in f" {source} ", (
                        f"{rec['id']}: {a!r} and {b!r} stand together in the text"
                    )
        shown += len(phrases)
    assert shown >= 2 * len(records)  # the reasons are there, only cleaned
