"""Issue 14, seasons over the API: the land-change-detection process takes a time series
(``scenes``, ``dates``, ``min_persist``) as ``ioc land detect S1 S2 S3 …`` does, through the
same code (:func:`gis.change.series.detect_series`), and refuses a bad series with a 400 naming
the problem and the scene as the client gave it, before any job or run exists.

The synthetic Red River Delta year of the CLI tests (tests/gis/test_land_series.py): paddies
flooded, green, harvested, flooded, green, flooded; one paddy built over in June 2024."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from tests.api.conftest import BEARER, TOKEN, count
from tests.api.test_features import assert_ogc_error
from tests.gis.test_land_series import YEAR, _write_series

pytestmark = pytest.mark.postgis

PROCESS = "/processes/land-change-detection/execution"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The server's data folder for these tests (process_data_roots)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def series(root):
    # out of date order on purpose, as the CLI test gives them
    paths = _write_series(root / "year")
    return [paths[i] for i in (3, 0, 5, 1, 4, 2)]


@pytest.fixture(scope="module")
def client(api_database_url, api_engine, root):
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings
    from gis.settings import LandSettings

    settings = ApiSettings(tokens=[TOKEN], base_url="http://testserver", process_data_roots=[root])
    app = create_app(
        settings, api_database_url, engine=api_engine, land=LandSettings(detector="cva")
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _given(root, paths) -> list[str]:
    """The paths as a client gives them (under the server's data folder)."""
    assert all(p.is_relative_to(root) for p in paths)
    return [str(p) for p in paths]


def test_a_time_series_runs_the_clis_series_detection(
    client, api_engine, root, series, tmp_path, monkeypatch
):
    from gis.change.detect import DetectionConfig
    from gis.change.series import detect_series

    monkeypatch.setenv("IOC_STATE_DIR", str(tmp_path / "state"))
    scenes = _given(root, series)
    runs = count(api_engine, "SELECT count(*) FROM detection_runs")
    r = client.post(
        PROCESS,
        json={"inputs": {"scenes": scenes, "method": "cva", "min_persist": 2}},
        headers=BEARER,
    )
    assert r.status_code == 200, r.text
    value = r.json()["value"]
    info = value["stats"]["series"]
    # like with like: the latest February compared with the February a year earlier
    assert (info["target_date"], info["reference_date"]) == ("2025-02-12", "2024-02-10")
    assert info["reason"].startswith("same season")
    assert [s["date"] for s in info["scenes"]] == sorted(d.isoformat() for d in YEAR)
    # the built-over paddy is the one conversion confirmed; the crop cycle is not one
    assert info["confirmed"] == 1 and info["min_persist"] == 2
    assert value["stats"]["by_kind"].get("conversion") == 1
    # the same as the CLI's code path gives on the same files
    cli = detect_series(series, DetectionConfig(method="cva"), min_persist=2)
    assert value["changes"] == len(cli.features)
    assert info["confirmed"] == cli.stats["series"]["confirmed"]
    assert len(info["pending"]) == len(cli.stats["series"]["pending"])
    # the scenes are named by their place in the data folder, never by a server path
    named = {str(p.relative_to(root)) for p in series}
    assert {s["path"] for s in info["scenes"]} == named
    assert info["target"] in named and str(root) not in r.text
    # stored as one run whose changes carry the persistence of the conversion
    assert count(api_engine, "SELECT count(*) FROM detection_runs") == runs + 1
    with api_engine.connect() as conn:
        from sqlalchemy import text

        kinds = conn.execute(
            text("SELECT kind, count(*) FROM land_changes WHERE run_id = :r GROUP BY kind"),
            {"r": value["run_id"]},
        ).all()
        params = conn.execute(
            text("SELECT parameters FROM detection_runs WHERE id = :r"), {"r": value["run_id"]}
        ).scalar()
    assert dict(kinds).get("conversion") == 1
    assert params["series"]["min_persist"] == 2 and len(params["series"]["scenes"]) == 6


def test_dates_given_with_the_scenes_date_them(client, root, tmp_path):
    """Scenes without a date in their name or tags, dated by ``dates`` as by ``--dates``."""
    src = _write_series(tmp_path, list(YEAR)[:3])
    folder = root / "undated"
    folder.mkdir(exist_ok=True)
    paths = []
    for i, p in enumerate(src):
        target = folder / f"scene_{chr(97 + i)}.tif"
        target.write_bytes(p.read_bytes())
        paths.append(target)
    dates = [d.isoformat() for d in list(YEAR)[:3]]
    r = client.post(
        PROCESS,
        json={
            "inputs": {
                "scenes": _given(root, paths),
                "dates": dates,
                "method": "cva",
                "store": False,
            }
        },
        headers=BEARER,
    )
    assert r.status_code == 200, r.text
    info = r.json()["value"]["stats"]["series"]
    assert [s["date"] for s in info["scenes"]] == dates
    assert info["target_date"] == dates[-1]


def _zero(path) -> None:
    """Cloud or nodata everywhere."""
    with rasterio.open(path, "r+") as ds:
        ds.write(np.zeros((ds.count, ds.height, ds.width), np.uint16))


@pytest.fixture(scope="module")
def bad(root):
    """Series that must be refused."""
    out = {}
    one = _write_series(root / "one_usable", list(YEAR)[:3])
    for p in one[1:]:
        _zero(p)
    out["one_usable"] = one
    sensors = _write_series(root / "sensors", list(YEAR)[:3])
    with rasterio.open(sensors[1], "r+") as ds:
        ds.update_tags(SENSOR="Landsat")
    out["sensors"] = sensors
    levels = _write_series(root / "levels", list(YEAR)[:3])
    for p, level in zip(levels, ("2A", "1C", "2A"), strict=True):
        with rasterio.open(p, "r+") as ds:
            ds.update_tags(PROCESSING_LEVEL=f"Level-{level}")
    out["levels"] = levels
    out["ok"] = _write_series(root / "ok", list(YEAR)[:3])
    return out


def _cases(root, bad) -> list[tuple[dict, list[str]]]:
    one, sensors, levels, ok = (
        _given(root, bad[k]) for k in ("one_usable", "sensors", "levels", "ok")
    )

    def named(p: str) -> str:  # how an error names a scene: its place in the data folder
        return p[len(str(root)) + 1 :]

    return [
        # a series with one usable date: the scenes named, the unusable ones said why
        (
            {"scenes": one},
            ["scenes", "two usable dates", named(one[0]), named(one[1]), "no valid pixel"],
        ),
        # scenes of different sensors / processing levels: the odd scene named
        ({"scenes": sensors}, ["scenes", named(sensors[1]), "sensor landsat", "one sensor"]),
        ({"scenes": levels}, ["scenes", named(levels[1]), "processing level l1c", "l2a"]),
        # the schema: one scene is no series, dates are dates, one per scene
        ({"scenes": ok[:1]}, ["scenes", "at least 2"]),
        ({"scenes": ok, "dates": ["2024-02-10", "2024-05-01"]}, ["dates", "2 dates for 3 scenes"]),
        (
            {"scenes": ok, "dates": ["2024-02-10", "2024-13-01", "2024-06-20"]},
            ["dates[1]", "yyyy-mm-dd"],
        ),
        ({"scenes": ok, "dates": ["2024-02-10"] * 3}, ["scenes", "same date"]),
        ({"scenes": ok, "min_persist": 0}, ["min_persist", "at least 1"]),
        ({"scenes": [ok[0], 7]}, ["scenes[1]", "string"]),
        ({"scenes": [*ok[:2], str(root / "none.tif")]}, ["scenes[2]", "does not exist"]),
        ({"scenes": [*ok[:2], "/etc/passwd"]}, ["scenes[2]", "data folders"]),
        # a pair or a series, not both; series inputs need a series
        ({"scenes": ok, "before": ok[0], "after": ok[1]}, ["either", "not both"]),
        ({"before": ok[0], "after": ok[1], "min_persist": 3}, ["min_persist", "time series"]),
        ({"before": ok[0]}, ["after", "required", "scenes"]),
        ({}, ["before", "required", "scenes"]),
    ]


def test_a_bad_series_is_a_400_naming_the_problem_before_any_job(client, api_engine, root, bad):
    runs = count(api_engine, "SELECT count(*) FROM detection_runs")
    jobs = count(api_engine, "SELECT count(*) FROM pygeoapi.jobs")
    for inputs, words in _cases(root, bad):
        for prefer in ({}, {"Prefer": "respond-async"}):
            r = client.post(
                PROCESS, json={"inputs": {**inputs, "method": "cva"}}, headers={**BEARER, **prefer}
            )
            assert_ogc_error(r, 400, *words)
            assert str(root) not in r.text, r.text  # no server path
    assert count(api_engine, "SELECT count(*) FROM detection_runs") == runs
    assert count(api_engine, "SELECT count(*) FROM pygeoapi.jobs") == jobs


def test_the_process_description_declares_the_series_inputs(client):
    inputs = client.get("/processes/land-change-detection?f=json").json()["inputs"]
    assert inputs["scenes"]["schema"]["type"] == "array"
    assert inputs["scenes"]["schema"]["minItems"] == 2
    assert inputs["dates"]["schema"]["items"]["format"] == "date"
    assert inputs["min_persist"]["schema"]["default"] == 2
    assert inputs["before"]["minOccurs"] == 0 and inputs["after"]["minOccurs"] == 0
