"""The shipped model file loads with the installed scikit-learn and behaves sensibly."""

from __future__ import annotations

import json

import pytest

from nlp.scoring import default_model_path, load_scorer
from nlp.settings import DEFAULT_MODEL_DIR

pytestmark = pytest.mark.skipif(
    not list(DEFAULT_MODEL_DIR.glob("sentiment-*.joblib")), reason="no shipped model in nlp/models"
)


@pytest.fixture(scope="module")
def scorer():
    return load_scorer(use_ner=False)


def test_shipped_model_loads_and_scores(scorer):
    assert (
        scorer.model_version
        == "sentiment-" + default_model_path().name[len("sentiment-") : -len(".joblib")]
    )
    out = scorer.score_records(
        [
            {
                "id": "a",
                "text": "Xe khách đâm vào vách núi, hai người chết, nhiều người bị thương nặng. Cơ quan công an đang điều tra nguyên nhân.",
            },
            {
                "id": "b",
                "text": "Khánh thành và thông xe cầu mới nối hai huyện, người dân phấn khởi. Công trình hoàn thành vượt tiến độ hai tháng.",
            },
            {
                "id": "c",
                "text": "Hơn 12.000 học sinh lớp 12 sẽ bước vào kỳ thi tốt nghiệp THPT, các trường học tổ chức ôn tập cho học sinh. Sở Giáo dục dự kiến bố trí 40 điểm thi.",
            },
        ]
    )
    labels = [r["sentiment"]["label"] for r in out]
    assert labels[0] == "negative" and labels[1] == "positive"
    for r in out:
        assert r["topic"] in {
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
        }
    assert out[0]["topic"] in {"traffic_accidents", "security_order"}
    assert out[2]["topic"] == "education"


def test_shipped_model_scores_posts_short_and_unaccented_text(scorer):
    out = scorer.score_records(
        [
            {
                "id": "p1",
                "text": "Đường làng xuống cấp quá, mưa xuống là ngập, đi lại khổ lắm mọi người ơi",
            },
            {
                "id": "p2",
                "text": "cam on cac anh cong an da ho tro ba con rat nhiet tinh",
            },  # unaccented
            {"id": "p3", "text": "tuyệt vời"},  # two words
            {"id": "p4", "text": "tệ"},  # one word
        ],
        genre="post",
    )
    assert all("sentiment" in r and r["genre"] == "post" for r in out), out
    assert out[0]["sentiment"]["label"] == "negative"
    assert out[1]["sentiment"]["label"] == "positive"
    assert out[2]["sentiment"]["label"] == "positive"
    assert all(0 < r["confidence"] <= 1 for r in out)


def test_shipped_model_tfidf_fallback_scores_the_same_records():
    from nlp.scoring import load_scorer as load

    fallback = load(use_ner=False, use_encoder=False)
    out = fallback.score_records(
        [
            {
                "id": "a",
                "text": "Xe khách đâm vào vách núi, hai người chết, nhiều người bị thương nặng.",
            },
            {"id": "p", "text": "hang tot, giao nhanh, rat hai long"},
        ]
    )
    assert [r["features"] for r in out] == ["tfidf", "tfidf"]
    assert out[0]["sentiment"]["label"] == "negative" and out[1]["sentiment"]["label"] == "positive"


def test_ioc_nlp_score_command(run_ioc, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps(
            {
                "id": 1,
                "text": "Cháy lớn tại xưởng gỗ ở thành phố Phủ Lý, tỉnh Hà Nam, thiệt hại hàng tỷ đồng.",
            },
            ensure_ascii=False,
        )
        + "\nnot json\n",
        encoding="utf-8",
    )
    res = run_ioc("nlp", "score", "--input", str(src), "--output", "-")
    assert res.returncode == 0, res.stderr
    first, second = (json.loads(x) for x in res.stdout.splitlines())
    assert first["sentiment"]["label"] == "negative"
    assert any(p["code"] == "347" for p in first["places"])
    assert "error" in second
