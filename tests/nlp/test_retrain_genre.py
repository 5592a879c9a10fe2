"""`ioc nlp retrain` with the genre model: corrections per genre, the promotion guard scores
candidate and current on the same frozen reference sets — on a synthetic copy of the shared
data layout (news-dev, unlabelled news, VLSP 2016, UIT-VSFC, UIT-ViSFD), TF-IDF heads (encoder off)."""

from __future__ import annotations

import json

import pytest

from nlp.heads import GenreModel
from nlp.registry import ModelRegistry, retrain_genre
from nlp.scoring import load_model
from nlp.sentiment import ModelConfig

from ._synthetic import items
from .test_genre import POST_NEG, POST_NEU, POST_POS


@pytest.fixture()
def data_dir(tmp_path):
    root = tmp_path / "data" / "sentiment"
    nd = root / "news-dev"
    nd.mkdir(parents=True)
    rows = items(150)
    for r in rows:
        r["source"] = "github:synthetic/x@1"
    (nd / "news_sentiment_dev.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8"
    )
    unl = items(60, seed=3, prefix="unl")
    (nd / "unlabelled.jsonl").write_text(
        "\n".join(json.dumps({"id": u["id"], "text": u["text"]}, ensure_ascii=False) for u in unl),
        encoding="utf-8",
    )
    vlsp = root / "vlsp2016-sa"
    vlsp.mkdir()
    pools = (("neg", POST_NEG), ("neu", POST_NEU), ("pos", POST_POS))
    lines = ["label\ttext"] + [
        f"{lab}\t{pool[i % len(pool)]} {i}" for i in range(30) for lab, pool in pools
    ]
    (vlsp / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    vs = root / "uit-vsfc" / "train"
    vs.mkdir(parents=True)
    sents, labs = [], []
    for i in range(30):
        for y, pool in (("0", POST_NEG), ("1", POST_NEU), ("2", POST_POS)):
            sents.append(pool[i % len(pool)])
            labs.append(y)
    (vs / "sents.txt").write_text("\n".join(sents) + "\n", encoding="utf-8")
    (vs / "sentiments.txt").write_text("\n".join(labs) + "\n", encoding="utf-8")
    vf = root / "uit-visfd"  # the post head also trains on UIT-ViSFD Train (labels from stars)
    vf.mkdir()
    rows_vf = ["index,comment,n_star,date_time,label"] + [
        f'{3 * i + k},"{pool[i % len(pool)]} {i}",{star},,'
        for i in range(20)
        for k, (star, pool) in enumerate(((1, POST_NEG), (3, POST_NEU), (5, POST_POS)))
    ]
    (vf / "Train.csv").write_text("\n".join(rows_vf) + "\n", encoding="utf-8")
    return tmp_path / "data"


@pytest.mark.slow
def test_genre_retrain_promotes_only_when_no_genre_gets_worse(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("IOC_NLP_ENCODER", "off")
    small = ModelConfig(lsa_components=20, lsa_max_features=500, lexicon=False)
    reg = ModelRegistry(tmp_path / "reg")
    good = [
        {
            "feedback_id": i,
            "article_id": i,
            "label": "negative",
            "title": "Cháy lớn thiêu rụi nhà xưởng",
            "lead": "Thiệt hại nặng.",
            "text": "",
        }
        for i in range(3)
    ]
    good.append(
        {
            "feedback_id": 9,
            "article_id": 9,
            "genre": "post",
            "label": "positive",
            "text": "hàng tốt lắm",
        }
    )
    res = retrain_genre(
        reg,
        data_dir,
        good,
        state_dir=tmp_path / "state",
        version="v1",
        echo=lambda m: None,
        base_config=small,
    )
    assert res.current_version == "v1-base" and res.n_corrections == 4
    assert {"macro_f1", "article_macro_f1", "post_macro_f1"} <= set(res.candidate_scores)
    assert "article:" in res.reason and "post:" in res.reason
    assert isinstance(load_model(reg.model_path("v1")), GenreModel)
    if res.promoted:
        assert reg.current_version == "v1"
    # mislabelled corrections, weighted heavily: the guard must refuse a candidate that is worse
    bad = [
        {"feedback_id": 100 + i, "article_id": 100 + i, "label": "positive", "text": r["text"]}
        for i, r in enumerate(items(150))
        if r["label"] == "negative"
    ]
    before = reg.current_version
    res2 = retrain_genre(
        reg,
        data_dir,
        bad,
        state_dir=tmp_path / "state",
        version="v2",
        echo=lambda m: None,
        base_config=small,
        correction_weight=20.0,
    )
    assert not res2.promoted and "refused (worse on article)" in res2.reason
    assert reg.current_version == before
