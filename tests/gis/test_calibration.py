"""Issue 14, calibrated change confidence: the shipped maps are monotone, a detection applies
them to its polygons, and a rule can ask for a minimum confidence for high severity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from gis.alerts import RuleSet, evaluate, load_rules
from gis.change.calibration import (
    Calibration,
    fit_isotonic,
    load_calibration,
    save_calibration,
)
from gis.change.detect import DetectionConfig, detect_changes
from gis.change.models import MODEL_DIR
from gis.errors import ConfigurationError
from tests.gis._land_rasters import scene, write_multiband

CHANGED = (slice(20, 34), slice(30, 44))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("cal")
    return (
        write_multiband(d / "before.tif", scene(64, seed=1)),
        write_multiband(d / "after.tif", scene(64, seed=2, changed=CHANGED)),
    )


@pytest.mark.parametrize("name", ["change_cnn_v3", "cva-noise4-v3"])
def test_the_shipped_calibrations_are_monotone_with_provenance(name):
    cal = load_calibration(MODEL_DIR / f"{name}.calibration.json", name)
    grid = np.linspace(0, 1, 501)
    out = cal.apply(grid)
    assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() <= 1
    assert out[-1] > out[0]  # not a constant
    prov = cal.provenance
    assert prov["cities"] and prov["command"].startswith("benchmarks/land_oscd.py")
    assert prov["brier_calibrated_loco"] < prov["brier_raw"]
    # CVA has no training; the CNN's map comes from its fold models' held-out polygons
    assert prov["out_of_fold"] is True


def test_an_isotonic_fit_is_monotone_and_tracks_the_truth():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.5, 1.0, 2000)
    truth = np.clip((raw - 0.5) * 1.2 + rng.normal(0, 0.1, raw.size), 0, 1)
    x, y = fit_isotonic(raw, truth)
    cal = Calibration(x, y, "m")
    assert np.all(np.diff(cal.apply(np.sort(raw))) >= 0)
    assert cal.apply(0.55) < 0.2 < 0.45 < cal.apply(0.95)
    # outside the fitted range: clipped to the end values
    assert cal.apply(0.0) == cal.apply(x[0]) and cal.apply(1.5) == cal.apply(x[-1])


def test_bad_calibration_files_are_one_sentence_naming_the_file(tmp_path):
    good = save_calibration(
        Calibration(np.array([0.5, 1.0]), np.array([0.1, 0.9]), "cva-x"), tmp_path / "c.json"
    )
    with pytest.raises(ConfigurationError, match="made for model 'cva-x', not 'other'"):
        load_calibration(good, "other")
    bad = tmp_path / "down.json"
    data = json.loads(good.read_text())
    data["y"] = [0.9, 0.1]
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError, match=f"{bad}: .*non-decreasing"):
        load_calibration(bad)
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    with pytest.raises(ConfigurationError, match=str(junk)):
        load_calibration(junk)


def test_detection_applies_the_calibration_to_each_polygon(pair, tmp_path):
    before, after = pair
    raw = detect_changes(before, after, DetectionConfig(method="cva", calibration="none"))
    assert raw.features and raw.parameters["calibration"] is None
    assert all(f["confidence"] == f["confidence_raw"] for f in raw.features)
    # the shipped CVA calibration is found by the detector's version
    auto = detect_changes(before, after, DetectionConfig(method="cva"))
    shipped = load_calibration(MODEL_DIR / "cva-noise4-v3.calibration.json")
    assert Path(auto.parameters["calibration"]).name == "cva-noise4-v3.calibration.json"
    for f in auto.features:
        assert f["confidence"] == pytest.approx(float(shipped.apply(f["confidence_raw"])), abs=1e-3)
    # a calibration file of one's own
    own = save_calibration(
        Calibration(np.array([0.0, 1.0]), np.array([0.0, 0.5]), "cva-noise4-v3"),
        tmp_path / "half.json",
    )
    res = detect_changes(before, after, DetectionConfig(method="cva", calibration=own))
    for f in res.features:
        assert f["confidence"] == pytest.approx(f["confidence_raw"] / 2, abs=1e-3)
    # a file for another model fails before any tile is scored
    other = save_calibration(
        Calibration(np.array([0.0, 1.0]), np.array([0.0, 1.0]), "change_cnn_v3"),
        tmp_path / "cnn.json",
    )
    with pytest.raises(ConfigurationError, match="not 'cva-noise4-v3'"):
        detect_changes(before, after, DetectionConfig(method="cva", calibration=other))


def _rules(min_conf: dict | None) -> RuleSet:
    data = load_rules().model_dump(by_alias=True)
    for r in data["rules"]:
        if min_conf is not None:
            r["min_confidence"] = min_conf
    return RuleSet.model_validate(data)


def _row(confidence):
    return {
        "parcel_id": 1,
        "commune_code": "13324",
        "land_use_code": "LUC",
        "parcel_area": 500.0,
        "from_class": "vegetation",
        "to_class": "built_up",
        "change_id": 7,
        "area": 300.0,
        "confidence": confidence,
    }


def test_a_rule_can_require_a_confidence_for_high_severity():
    # without min_confidence nothing changes, whatever the confidence
    assert evaluate([_row(0.05)], _rules(None))[0].severity == "high"
    rules = _rules({"high": 0.3})
    assert evaluate([_row(0.6)], rules)[0].severity == "high"
    (low_conf,) = evaluate([_row(0.1)], rules)
    assert (low_conf.rule, low_conf.severity) == ("rice_land_lost", "medium")
    assert low_conf.rules == ["rice_land_lost", "agricultural_to_built_up"]
    # unknown confidence (older runs): unchanged
    assert evaluate([_row(None)], rules)[0].severity == "high"
    with pytest.raises(ValueError):
        _rules({"urgent": 0.3})


@pytest.mark.postgis
def test_stored_changes_carry_the_calibrated_confidence_and_rules_use_it(
    connection, pair, tmp_path
):
    import pyogrio
    import shapely

    from gis.cadastre import import_cadastre
    from gis.change.store import store_run
    from tests.gis._land_rasters import ORIGIN

    x0, y0 = ORIGIN
    box = shapely.box(x0 + 300, y0 - 340, x0 + 440, y0 - 200)  # the changed square
    path = tmp_path / "p.geojson"
    pyogrio.raw.write(
        path,
        shapely.to_wkb(np.array([box], dtype=object)),
        [np.array(v, dtype=object) for v in (["13345"], ["8"], ["1"], ["LUC"])],
        ["MaXa", "SoTo", "SoThua", "LoaiDat"],
        crs="EPSG:32648",
        geometry_type="Polygon",
        driver="GeoJSON",
    )
    import_cadastre(connection, path, force=True)
    low = save_calibration(
        Calibration(np.array([0.0, 1.0]), np.array([0.0, 0.1]), "cva-noise4-v3"),
        tmp_path / "low.json",
    )
    res = detect_changes(*pair, DetectionConfig(method="cva", calibration=low))
    out = store_run(connection, res, _rules({"high": 0.3}), state_dir=tmp_path / "state")
    stored = connection.execute(
        text("SELECT max(confidence) FROM land_changes WHERE run_id = :r"), {"r": out["run_id"]}
    ).scalar_one()
    assert stored <= 0.1
    severity = connection.execute(
        text(
            "SELECT a.severity FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id "
            "WHERE a.run_id = :r AND p.sheet_number = '8'"
        ),
        {"r": out["run_id"]},
    ).scalar_one()
    assert severity == "medium"
