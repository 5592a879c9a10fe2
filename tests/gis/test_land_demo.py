"""The land stage of ``ioc demo`` on the shipped sample (real PostGIS, rolled back)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from gis.change.models import DEFAULT_MODELS, MODEL_DIR
from gis.demo import demo_stage

pytestmark = pytest.mark.postgis
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (MODEL_DIR / DEFAULT_MODELS["cnn"]).exists(), reason="no shipped CNN")
def test_demo_stage_imports_detects_and_stores(connection, tmp_path):
    lines: list[str] = []
    ctx = SimpleNamespace(
        engine=connection,
        database_url="",
        state_dir=tmp_path,
        data_dir=REPO / "data",
        echo=lines.append,
    )
    demo_stage(ctx)
    run = connection.execute(
        text("SELECT id, method, status FROM detection_runs ORDER BY id DESC LIMIT 1")
    ).one()
    assert run.method == "cnn" and run.status == "succeeded"
    changes = connection.execute(
        text("SELECT count(*) FROM land_changes WHERE run_id = :r"), {"r": run.id}
    ).scalar_one()
    alerts = connection.execute(
        text("SELECT count(*) FROM parcel_alerts WHERE run_id = :r"), {"r": run.id}
    ).scalar_one()
    assert changes > 0 and alerts > 0
    # the sample's planted changes (data/README.md): two rice parcels built over, two garden
    # (CLN) plots cleared; the seasonal rice and annual-crop changes raise nothing
    found = (
        connection.execute(
            text(
                "SELECT p.sheet_number || '/' || p.parcel_number AS parcel, p.land_use_code_raw AS raw, "
                "a.rule, a.rules, a.severity, a.changed_fraction FROM parcel_alerts a "
                "JOIN parcels p ON p.id = a.parcel_id WHERE a.run_id = :r"
            ),
            {"r": run.id},
        )
        .mappings()
        .all()
    )
    built_over = {
        a["parcel"] for a in found if "rice_land_lost" in a["rules"] and a["changed_fraction"] > 0.5
    }
    cleared = {a["parcel"] for a in found if "agricultural_to_bare" in a["rules"]}
    assert len(built_over) == 2 and len(cleared) == 2
    # one alert per parcel (issue 12: the demo had 7 alerts on 5 parcels), listing every rule
    assert len({a["parcel"] for a in found}) == len(found) == alerts
    assert all(
        a["severity"] == "high"
        and set(a["rules"]) >= {"rice_land_lost", "agricultural_to_built_up"}
        for a in found
        if a["parcel"] in built_over
    )
    assert not any(a["raw"] == "BHK" for a in found)
    # the new buildings' polygons stay on their parcels: at most one neighbour is reached by
    # the edge pixels (10 m pixels straddle parcel boundaries)
    assert len({a["parcel"] for a in found if a["raw"] == "LUC"}) <= 3
    assert (tmp_path / "demo" / "land" / "change_mask.tif").exists()
    assert any("parcel alerts" in ln for ln in lines)

    # the demo run again: the same run is updated, not duplicated
    runs = connection.execute(text("SELECT count(*) FROM detection_runs")).scalar_one()
    demo_stage(ctx)
    assert connection.execute(text("SELECT count(*) FROM detection_runs")).scalar_one() == runs
    assert (
        connection.execute(
            text("SELECT count(*) FROM parcel_alerts WHERE run_id = :r"), {"r": run.id}
        ).scalar_one()
        == alerts
    )
