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
    ctx = SimpleNamespace(engine=connection, database_url="", state_dir=tmp_path,
                          data_dir=REPO / "data", echo=lines.append)
    demo_stage(ctx)
    run = connection.execute(text(
        "SELECT id, method, status FROM detection_runs ORDER BY id DESC LIMIT 1")).one()
    assert run.method == "cnn" and run.status == "succeeded"
    changes = connection.execute(text(
        "SELECT count(*) FROM land_changes WHERE run_id = :r"), {"r": run.id}).scalar_one()
    alerts = connection.execute(text(
        "SELECT count(*) FROM parcel_alerts WHERE run_id = :r"), {"r": run.id}).scalar_one()
    assert changes > 0 and alerts > 0
    assert (tmp_path / "demo" / "land" / "change_mask.tif").exists()
    assert any("parcel alerts" in ln for ln in lines)
