"""``ioc land ...`` through click's CliRunner on a real PostGIS (rolled back after each test):
detection stored in one transaction, parcel alerts with seasonal handling, failed runs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from sqlalchemy import text

from gis.cli_land import land
from tests.gis._land_rasters import write_multiband

pytestmark = pytest.mark.postgis

REPO = Path(__file__).resolve().parents[2]
LAND = REPO / "data" / "land"
BEFORE = LAND / "before"
AFTER = LAND / "after_T48QXH_20250418.tif"


@pytest.fixture
def invoke(connection):
    runner = CliRunner()
    obj = SimpleNamespace(engine=lambda: connection)

    def run(*args: str):
        return runner.invoke(land, list(args), obj=obj, catch_exceptions=False)

    return run


def _count(conn, sql: str, **params) -> int:
    return conn.execute(text(sql), params).scalar_one()


def test_import_detect_store_and_list_alerts(invoke, connection, tmp_path):
    r = invoke("import-cadastre", str(LAND / "sample_cadastre.gpkg"))
    assert r.exit_code == 0, r.output
    assert "134 parcels" in r.output and "geometries repaired" in r.output
    mask, vec = tmp_path / "mask.tif", tmp_path / "changes.geojson"
    r = invoke(
        "detect",
        str(BEFORE),
        str(AFTER),
        "--method",
        "cva",
        "--mask-out",
        str(mask),
        "--vector-out",
        str(vec),
        "--store",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    assert "stored as run" in r.output
    run_id = _count(connection, "SELECT max(id) FROM detection_runs WHERE status = 'succeeded'")
    run = (
        connection.execute(text("SELECT * FROM detection_runs WHERE id = :i"), {"i": run_id})
        .mappings()
        .one()
    )
    assert run["method"] == "cva" and run["before_scene_id"] and run["after_scene_id"]
    assert run["stats"]["alerts"] >= 1
    scene = connection.execute(
        text(
            "SELECT acquired_at, sensor, cloud_fraction, ST_IsValid(footprint) FROM imagery_scenes "
            "WHERE id = :i"
        ),
        {"i": run["before_scene_id"]},
    ).one()
    assert scene[0].year == 2024 and scene[1] == "Sentinel-2" and scene[2] > 0 and scene[3]
    n_changes = _count(connection, "SELECT count(*) FROM land_changes WHERE run_id = :r", r=run_id)
    assert n_changes == len(json.loads(vec.read_text())["features"]) > 0
    with rasterio.open(mask) as m, rasterio.open(next(BEFORE.glob("*_B02.tif"))) as b:
        assert m.transform == b.transform and m.shape == b.shape and m.nodata == 255
        assert (m.read(1) == 255).any()  # the SCL cloud
    # alerts: the two rice parcels built over, garden (CLN) plots cleared; nothing on the
    # seasonal rice / annual-crop changes
    alerts = (
        connection.execute(
            text(
                "SELECT p.land_use_code_raw AS raw, a.parcel_id, a.rule, a.rules, a.severity, "
                "a.observed_to FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id "
                "WHERE a.run_id = :r"
            ),
            {"r": run_id},
        )
        .mappings()
        .all()
    )
    rules = {(a["raw"], r) for a in alerts for r in a["rules"]}
    # one alert per parcel, its first rule the one that set the severity
    assert len({a["parcel_id"] for a in alerts}) == len(alerts)
    assert all(a["rules"][0] == a["rule"] for a in alerts)
    assert ("LUC", "rice_land_lost") in rules
    assert ("LUC", "agricultural_to_built_up") in rules
    assert ("CLN", "agricultural_to_bare") in rules
    assert not any(a["raw"] == "BHK" for a in alerts)  # annual crop → bare: seasonal
    assert all(a["observed_to"] in ("built_up", "bare") for a in alerts)
    # listing and export
    r = invoke("alerts", "--run", str(run_id), "--format", "json")
    listed = json.loads(r.output)
    assert len(listed) == len(alerts) and {"sheet_number", "severity"} <= set(listed[0])
    out = tmp_path / "alerts.geojson"
    r = invoke("alerts", "--run", str(run_id), "--format", "geojson", "--output", str(out))
    assert r.exit_code == 0 and json.loads(out.read_text())["features"][0]["geometry"]
    r = invoke("alerts", "--summary", "--run", str(run_id))
    assert "13345" in r.output or "13324" in r.output
    r = invoke("alerts", "--run", str(run_id), "--format", "csv", "--severity", "high")
    assert r.output.splitlines()[0].startswith("id,run_id")
    alert_id = int(listed[0]["id"])
    r = invoke("review", str(alert_id), "--status", "confirmed", "--reviewer", "cán bộ địa chính")
    assert r.exit_code == 0
    assert (
        connection.execute(
            text("SELECT review_status FROM parcel_alerts WHERE id = :i"), {"i": alert_id}
        ).scalar_one()
        == "confirmed"
    )


def test_bad_input_records_a_failed_run_and_nothing_else(invoke, connection, tmp_path):
    before_runs = _count(connection, "SELECT count(*) FROM detection_runs")
    scenes = _count(connection, "SELECT count(*) FROM imagery_scenes")
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00garbage")
    runner = CliRunner()
    r = runner.invoke(
        land,
        ["detect", str(BEFORE), str(bad), "--store", "--method", "cva", "--quiet"],
        obj=SimpleNamespace(engine=lambda: connection),
    )
    assert r.exit_code != 0
    assert "corrupt.tif" in r.output and "Traceback" not in r.output
    failed = connection.execute(
        text("SELECT status, error FROM detection_runs ORDER BY id DESC LIMIT 1")
    ).one()
    assert failed[0] == "failed" and "corrupt.tif" in failed[1]
    assert _count(connection, "SELECT count(*) FROM detection_runs") == before_runs + 1
    assert _count(connection, "SELECT count(*) FROM imagery_scenes") == scenes


def test_error_while_storing_leaves_nothing_partial(invoke, connection, monkeypatch):
    import gis.change.store as store

    def boom(*a, **k):
        raise RuntimeError("alert rules exploded")

    monkeypatch.setattr(store, "create_alerts", boom)
    changes = _count(connection, "SELECT count(*) FROM land_changes")
    scenes = _count(connection, "SELECT count(*) FROM imagery_scenes")
    runner = CliRunner()
    r = runner.invoke(
        land,
        ["detect", str(BEFORE), str(AFTER), "--store", "--method", "cva", "--quiet"],
        obj=SimpleNamespace(engine=lambda: connection),
    )
    assert r.exit_code != 0
    assert _count(connection, "SELECT count(*) FROM land_changes") == changes
    assert _count(connection, "SELECT count(*) FROM imagery_scenes") == scenes
    status, error = connection.execute(
        text("SELECT status, error FROM detection_runs ORDER BY id DESC LIMIT 1")
    ).one()
    assert status == "failed" and "alert rules exploded" in error


@pytest.mark.parametrize("case", ["no_overlap", "crs_mismatch_unalignable", "all_nodata"])
def test_bad_pairs_are_one_line_errors(invoke, tmp_path, case):
    data = np.full((10, 16, 16), 1000, np.uint16)
    before = write_multiband(tmp_path / "before.tif", data)
    if case == "no_overlap":
        after = write_multiband(tmp_path / "after.tif", data, origin=(900000.0, 100000.0))
        expect = "does not overlap"
    elif case == "crs_mismatch_unalignable":
        after = tmp_path / "after.tif"
        with rasterio.open(
            after, "w", driver="GTiff", width=16, height=16, count=10, dtype="uint16"
        ) as dst:
            dst.write(data)
        expect = "no coordinate reference system"
    else:
        after = write_multiband(tmp_path / "after.tif", np.zeros_like(data))
        expect = "no valid pixels"
    r = invoke("detect", str(before), str(after), "--method", "cva", "--quiet")
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0] and "after.tif" in lines[0]


def test_ioc_land_detect_runs_as_a_command(run_ioc, tmp_path):
    mask = tmp_path / "m.tif"
    p = run_ioc(
        "land",
        "detect",
        str(BEFORE),
        str(AFTER),
        "--method",
        "cva",
        "--no-store",
        "--mask-out",
        str(mask),
    )
    assert p.returncode == 0, p.stderr
    assert mask.exists() and "change polygons" in p.stdout
    p = run_ioc("land", "detect", str(BEFORE), str(tmp_path / "missing.tif"), "--no-store")
    assert p.returncode != 0 and "missing.tif: no such file" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def _alert_rows(conn, run_id: int) -> list[dict]:
    return [
        dict(r)
        for r in conn.execute(
            text(
                "SELECT id, parcel_id, rule, rules, severity, review_status, reviewer, superseded_at "
                "FROM parcel_alerts WHERE run_id = :r ORDER BY parcel_id"
            ),
            {"r": run_id},
        ).mappings()
    ]


def test_the_same_run_stored_twice_is_updated_not_duplicated(invoke, connection, tmp_path):
    # issue 12: re-running a pair duplicated every change and alert, and one change on one
    # parcel gave one alert per rule that fired
    assert invoke("import-cadastre", str(LAND / "sample_cadastre.gpkg")).exit_code == 0
    runs0 = _count(connection, "SELECT count(*) FROM detection_runs")
    scenes0 = _count(connection, "SELECT count(*) FROM imagery_scenes")
    args = ("detect", str(BEFORE), str(AFTER), "--method", "cva", "--store", "--quiet")
    r = invoke(*args)
    assert r.exit_code == 0 and "stored as run" in r.output, r.output
    run_id = _count(connection, "SELECT max(id) FROM detection_runs")
    first = _alert_rows(connection, run_id)
    changes = _count(connection, "SELECT count(*) FROM land_changes WHERE run_id = :r", r=run_id)
    assert first and len({a["parcel_id"] for a in first}) == len(first)
    rice = [a for a in first if "rice_land_lost" in a["rules"]]
    assert rice and any(len(a["rules"]) >= 2 for a in rice)  # both rules on one alert
    assert all(a["severity"] == "high" for a in rice)
    confirmed = first[0]["id"]
    r = invoke("review", str(confirmed), "--status", "confirmed", "--reviewer", "officer")
    assert r.exit_code == 0
    # the same pair again, from a copy of AFTER elsewhere (content, not path, identifies it)
    copy = tmp_path / "copy_of_after.tif"
    copy.write_bytes(AFTER.read_bytes())
    r = invoke("detect", str(BEFORE), str(copy), "--method", "cva", "--store", "--quiet")
    assert r.exit_code == 0 and f"updated run {run_id}" in r.output, r.output
    assert _count(connection, "SELECT count(*) FROM detection_runs") == runs0 + 1
    assert _count(connection, "SELECT count(*) FROM imagery_scenes") == scenes0 + 2
    assert (
        _count(connection, "SELECT count(*) FROM land_changes WHERE run_id = :r", r=run_id)
        == changes
    )
    again = _alert_rows(connection, run_id)
    assert [a["id"] for a in again] == [a["id"] for a in first]  # same alerts, same ids
    assert next(a for a in again if a["id"] == confirmed)["review_status"] == "confirmed"
    run = connection.execute(
        text("SELECT updated_at, parameters FROM detection_runs WHERE id = :i"), {"i": run_id}
    ).one()
    assert run.updated_at is not None and len(run.parameters["after_fingerprint"]) == 64
    # another method is another run; --force stores a new run of the same pair
    r = invoke(*args, "--force")
    assert r.exit_code == 0 and "stored as run" in r.output
    assert _count(connection, "SELECT count(*) FROM detection_runs") == runs0 + 2
    r = invoke(*args, "--mmu", "500")
    assert "stored as run" in r.output
    assert _count(connection, "SELECT count(*) FROM detection_runs") == runs0 + 3


def test_a_reviewed_alert_a_rerun_no_longer_raises_is_kept(invoke, connection, tmp_path):
    assert invoke("import-cadastre", str(LAND / "sample_cadastre.gpkg")).exit_code == 0
    args = ("detect", str(BEFORE), str(AFTER), "--method", "cva", "--store", "--quiet")
    assert invoke(*args).exit_code == 0
    run_id = _count(connection, "SELECT max(id) FROM detection_runs")
    first = _alert_rows(connection, run_id)
    bare = [a for a in first if a["rules"] == ["agricultural_to_bare"]]
    assert len(bare) >= 2
    reviewed, unreviewed = bare[0]["id"], bare[1]["id"]
    assert (
        invoke("review", str(reviewed), "--status", "dismissed", "--reviewer", "officer").exit_code
        == 0
    )
    # the same run with rules that no longer have the bare-soil rule
    import yaml

    from gis.alerts import DEFAULT_RULES_FILE

    data = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    data["rules"] = [r for r in data["rules"] if r["id"] != "agricultural_to_bare"]
    edited = tmp_path / "rules.yaml"
    edited.write_text(yaml.safe_dump(data), encoding="utf-8")
    r = invoke(*args, "--rules", str(edited))
    assert r.exit_code == 0 and "1 reviewed alerts no longer raised kept" in r.output, r.output
    after = {a["id"]: a for a in _alert_rows(connection, run_id)}
    assert unreviewed not in after
    kept = after[reviewed]
    assert kept["review_status"] == "dismissed" and kept["superseded_at"] is not None
    assert all(a["superseded_at"] is None for i, a in after.items() if i != reviewed)
    summary = invoke("alerts", "--summary", "--run", str(run_id), "--format", "json")
    assert sum(row["total"] for row in json.loads(summary.output)) == len(after) - 1
