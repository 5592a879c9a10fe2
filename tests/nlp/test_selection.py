"""Model selection for the post head: folds keep an item and its stripped copy together, outer
folds hold out one set only, the per-set criterion weighs sets alike, and the data-set specs
(NAME[:N][/stripped]) are parsed strictly — on small synthetic data (fast, no encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from nlp.heads import Data, HeadConfig, fold_splits
from nlp.selection import best_bias, criterion_score, nested_cv, outer_splits, resolve_criterion
from nlp.text import strip_diacritics
from nlp.training import labelled_data, parse_spec

from .test_genre import POST_NEG, POST_NEU, POST_POS


def _set(name: str, n: int, offset: int = 0, stripped: bool = False) -> Data:
    pools = (("negative", POST_NEG), ("neutral", POST_NEU), ("positive", POST_POS))
    texts, labels, keys = [], [], []
    for i in range(n):
        lab, pool = pools[i % 3]
        t = f"{pool[(i // 3) % len(pool)]} {i + offset}"
        texts.append(strip_diacritics(t) if stripped else t)
        labels.append(lab)
        keys.append(f"{name}-{i}")
    return Data(
        texts,
        [t.lower() for t in texts],
        np.array(labels),
        None,
        np.ones(n),
        np.full(n, name + ("/stripped" if stripped else ""), dtype=object),
        np.array(keys, dtype=object),
    )


def test_folds_keep_an_item_and_its_stripped_copy_together():
    data = Data.concat([_set("a", 60), _set("a", 60, stripped=True), _set("b", 30)])
    splits = fold_splits(data, 3, seed=0)
    assert sorted(np.concatenate([te for _, te in splits]).tolist()) == list(range(150))
    for tr, te in splits:
        assert not set(data.keys[tr]) & set(data.keys[te])
        # stratified by set and label: every test fold holds each set's classes
        for g in ("a", "b"):
            assert set(data.labels[te][data.groups[te] == g]) == {"negative", "neutral", "positive"}


def test_outer_folds_hold_out_one_set_and_drop_the_copies_of_held_out_items():
    data = Data.concat([_set("vlsp", 45), _set("vsfc", 30), _set("vlsp", 45, stripped=True)])
    splits = outer_splits(data, 5, seed=0, outer_group="vlsp")
    held = np.concatenate([te for _, te in splits])
    assert sorted(held.tolist()) == list(range(45))  # only the VLSP originals are scored
    for tr, te in splits:
        assert set(data.groups[te]) == {"vlsp"}
        assert not set(data.keys[tr]) & set(data.keys[te])  # no copy of a test item trains
        assert (data.groups[tr] == "vsfc").sum() == 30  # the other set trains in every fold
    with pytest.raises(ValueError, match="no rows of set 'nope'"):
        outer_splits(data, 5, outer_group="nope")


def test_per_set_criterion_weighs_a_small_set_like_a_large_one():
    y = np.array(["negative", "neutral", "positive"] * 60 + ["positive"] * 10)
    groups = np.array(["big"] * 180 + ["small"] * 10, dtype=object)
    pred = y.copy()
    pred[180:] = "negative"  # the small set all wrong
    pooled = criterion_score(y, pred, groups, "pooled")
    per_set = criterion_score(y, pred, groups, "per-set")
    assert pooled > 0.9 and per_set == pytest.approx(0.5)  # big set 1.0, small set 0.0
    assert resolve_criterion("auto", _set("a", 9)) == "pooled"
    assert resolve_criterion("auto", Data.concat([_set("a", 9), _set("b", 9)])) == "per-set"
    with pytest.raises(ValueError, match="unknown selection criterion"):
        resolve_criterion("best", _set("a", 9))


def test_neutral_bias_is_chosen_by_the_criterion():
    # a set whose neutral items score just below the others: a positive bias recovers them
    y = np.array(["negative", "neutral", "positive"] * 20)
    d = np.zeros((60, 3))
    d[np.arange(60), [0, 1, 2] * 20] = 1.0
    d[y == "neutral", 1] = 0.0
    d[y == "neutral", 0] = 0.4
    bias, f = best_bias(d, y)
    assert bias > 0.4 and f == pytest.approx(1.0)


def test_nested_cv_on_a_mix_reports_the_held_out_set_and_the_gap():
    data = Data.concat([_set("vlsp", 60), _set("vsfc", 60, offset=100)])
    grid = [HeadConfig("plain", 0.0, 1.0), HeadConfig("plain", 0.0, 3.0)]
    res = nested_cv(grid, data, outer=3, inner=3, outer_group="vlsp")
    assert res["scores"]["n"] == 60 and len(res["chosen"]) == 3
    assert res["criterion"] == "per-set"
    assert res["gap"] == pytest.approx(
        res["tuned"]["macro_f1"] - res["scores"]["macro_f1"], abs=1e-4
    )
    assert res["scores"]["macro_f1"] > 0.8  # the pools are separable by their words


def test_specs_are_parsed_strictly():
    assert parse_spec("vlsp2016") == ("vlsp2016", None, False)
    assert parse_spec("vsfc-train:4000/stripped") == ("vsfc-train", 4000, True)
    with pytest.raises(ValueError, match="only suffix is /stripped"):
        parse_spec("vsfc-train/folded")
    with pytest.raises(ValueError, match="whole number"):
        parse_spec("vsfc-train:many")


def test_labelled_data_stripped_copies_share_their_originals_keys(tmp_path):
    base = tmp_path / "sentiment" / "vlsp2016-sa"
    base.mkdir(parents=True)
    (base / "train.tsv").write_text(
        "label\ttext\nneg\tHàng kém quá\npos\tHàng tốt lắm\nneu\tCòn hàng không ạ\n",
        encoding="utf-8",
    )
    orig, _ = labelled_data(tmp_path, "vlsp2016", None)
    copy, _ = labelled_data(tmp_path, "vlsp2016:2/stripped", None)
    assert orig.groups.tolist() == ["vlsp2016"] * 3
    assert copy.groups.tolist() == ["vlsp2016/stripped"] * 2
    assert set(copy.keys) <= set(orig.keys)
    assert all(t == strip_diacritics(t) for t in copy.texts)
    assert "Hang" in " ".join(copy.texts)
