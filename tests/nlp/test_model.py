"""Model, scoring API, CLI contract and retraining — on a small synthetic corpus (fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nlp.cli import nlp as nlp_group
from nlp.errors import ModelLoadError, ModelNotFoundError
from nlp.places import PlaceFinder, load_gazetteer
from nlp.registry import ModelRegistry, retrain
from nlp.scoring import Scorer, load_model, load_scorer, save_model
from nlp.sentiment import LABELS, ModelConfig, prepare, train_model
from nlp.settings import DEFAULT_GAZETTEER

from ._synthetic import items

SMALL = ModelConfig(char_ngrams=False, lsa_components=0, lexicon=False, calibrate=True)


def _corpus(rows):
    return prepare(
        [r["text"] for r in rows],
        labels=np.array([r["label"] for r in rows]),
        topics=np.array([r["topic"] for r in rows]),
        ids=[r["id"] for r in rows],
    )


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    rows = items(90)
    model = train_model(_corpus(rows), prepare([]), SMALL, version="test")
    path = tmp_path_factory.mktemp("m") / "sentiment-test.joblib"
    save_model(model, path)
    return path


@pytest.fixture(scope="module")
def scorer(model_file):
    return load_scorer(model_file, DEFAULT_GAZETTEER, use_ner=False)


def test_scores_are_calibrated_probabilities_with_reasons(scorer):
    out = scorer.score_records(
        [
            {
                "id": 1,
                "title": "Tai nạn giao thông khiến hai người tử vong",
                "lead": "Tại huyện Kim Bảng, cháy lớn thiêu rụi nhà xưởng.",
                "text": "Người dân bức xúc vì ô nhiễm nghiêm trọng. Cơ quan đã khởi tố vụ án.",
                "published": "2024-02-01",
            },
            {
                "id": 2,
                "text": "Khánh thành cầu mới phục vụ người dân. Kinh tế tăng trưởng vượt chỉ tiêu ở Duy Tiên, Hà Nam.",
            },
        ]
    )
    neg, pos = out
    assert neg["sentiment"]["label"] == "negative"
    assert pos["sentiment"]["label"] == "positive"
    for rec in out:
        s = rec["sentiment"]["scores"]
        assert set(s) == set(LABELS) and abs(sum(s.values()) - 1) < 1e-3
        assert rec["sentiment"]["reasons"], "the label comes with its reasons"
        assert rec["topic"] in {"security_order", "economy_investment", "public_services_admin"}
        assert rec["model_version"] == "sentiment-test"
    assert any(r["kind"] == "phrase" for r in neg["sentiment"]["reasons"])
    assert any(p["code"] == "350" for p in neg["places"])  # huyện Kim Bảng


def test_bad_records_never_kill_the_batch(scorer):
    out = scorer.score_records(
        [
            "not an object",
            {"id": "e", "text": ""},
            {"id": "s", "text": "Ngắn"},
            {
                "id": "en",
                "text": "The provincial committee met today to discuss the new budget for roads.",
            },
            {"id": "t", "text": 42},
            {"id": "huge", "text": "Tai nạn giao thông nghiêm trọng. " * 20000},
            {"id": "ok", "text": "Cháy lớn thiêu rụi nhà xưởng, thiệt hại nặng."},
        ]
    )
    assert "error" in out[0]
    assert "empty" in out[1]["not_scored"]
    assert (
        "not_scored" not in out[2] and out[2]["sentiment"]["label"] in LABELS
    )  # short text is scored
    assert "not Vietnamese" in out[3]["not_scored"]
    assert "not a string" in out[4]["error"]
    assert out[5]["sentiment"]["label"] == "negative"
    assert out[6]["sentiment"]["label"] == "negative" and out[6]["id"] == "ok"


def test_model_file_errors(tmp_path):
    with pytest.raises(ModelNotFoundError):
        load_model(tmp_path / "nope.joblib")
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError):
        load_model(bad)


def test_cli_score_contract(model_file, tmp_path):
    lines = [
        json.dumps(
            {
                "id": "a",
                "text": "Tai nạn giao thông khiến hai người tử vong ở Phủ Lý.",
                "source": "x",
            },
            ensure_ascii=False,
        ),
        "{broken json",
        json.dumps([1, 2]),
        json.dumps(
            {"id": "b", "text": "Khánh thành cầu mới phục vụ người dân, kinh tế tăng trưởng."},
            ensure_ascii=False,
        ),
        json.dumps({"id": "c"}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(
        nlp_group,
        [
            "score",
            "--input",
            str(src),
            "--output",
            str(out),
            "--model",
            str(model_file),
            "--no-ner",
        ],
    )
    assert res.exit_code == 0, res.output
    recs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == 5
    assert recs[0]["source"] == "x" and recs[0]["sentiment"]["label"] == "negative"
    assert (
        set(recs[0]["sentiment"]["scores"]) == set(LABELS)
        and "topic" in recs[0]
        and "places" in recs[0]
    )
    assert recs[1]["line"] == 2 and "not valid JSON" in recs[1]["error"]
    assert "not a JSON object" in recs[2]["error"]
    assert recs[3]["sentiment"]["label"] == "positive"
    assert 'no "text"' in recs[4]["error"]


def test_cli_score_missing_model(tmp_path):
    res = CliRunner().invoke(
        nlp_group, ["score", "--model", str(tmp_path / "none.joblib")], input=""
    )
    assert res.exit_code != 0 and "does not exist" in res.output


def test_retrain_promotes_good_and_refuses_bad_corrections(tmp_path):
    labelled = items(150, seed=1)
    registry = ModelRegistry(tmp_path / "reg")
    cfg = ModelConfig(char_ngrams=False, lsa_components=0, lexicon=False, calibrate=False)
    good = [
        {
            "feedback_id": i,
            "article_id": i,
            "label": r["label"],
            "title": "",
            "lead": "",
            "text": r["text"],
        }
        for i, r in enumerate(items(30, seed=7, prefix="fb"))
    ]
    first = retrain(registry, labelled, [], good, cfg, version="v1")
    assert first.promoted, first.reason
    assert registry.current_version == "v1"
    assert len(registry.history()) == 2  # the baseline without corrections + the candidate
    flip = {"negative": "positive", "positive": "neutral", "neutral": "negative"}
    bad = [
        {
            "feedback_id": 1000 + i,
            "article_id": 1000 + i,
            "label": flip[r["label"]],
            "title": "",
            "lead": "",
            "text": r["text"],
        }
        for i, r in enumerate(items(300, seed=9, prefix="bad"))
    ]
    second = retrain(registry, labelled, [], bad, cfg, version="v2", correction_weight=3.0)
    assert not second.promoted, second.reason
    assert registry.current_version == "v1"
    assert (registry.root / "v2" / "sentiment-v2.joblib").exists()  # kept, not current
    # rollback goes back to the baseline
    assert registry.rollback().endswith("-base")
    with pytest.raises(ModelNotFoundError):
        registry.rollback()


def test_places_scorer_uses_date(model_file):
    gaz = load_gazetteer(DEFAULT_GAZETTEER)
    s = Scorer(load_model(model_file), PlaceFinder(gaz, use_ner=False))
    rec = s.score_records(
        [
            {
                "id": 1,
                "text": "Cháy lớn ở phường Phủ Lý, tỉnh Ninh Bình, thiệt hại nặng.",
                "published": "2025-08-01",
            }
        ]
    )[0]
    assert ("13285", "new") in {(p["code"], p["valid"]) for p in rec["places"]}


def test_lsa_quantised_storage_keeps_predictions(tmp_path):
    rows = items(60, seed=3)
    cfg = ModelConfig(
        char_ngrams=False, lsa_components=8, lsa_max_features=500, lexicon=False, calibrate=False
    )
    unl = prepare([r["text"] for r in items(80, seed=4)])
    model = train_model(_corpus(rows), unl, cfg, version="q")
    texts = [r["text"] for r in rows[:10]]
    before, _, _ = model.predict_units(texts)
    path = save_model(model, tmp_path / "sentiment-q.joblib")
    after, _, _ = load_model(path).predict_units(texts)
    assert np.abs(before - after).max() < 0.02
