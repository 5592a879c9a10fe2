"""Issue 14, seasons: detection over a time series of scenes (real rasters, real PostGIS for the
stored part). A synthetic Red River Delta year: paddies flooded in February, green in May,
harvested (bare) in June, flooded again in August, green in October; one paddy is built over in
June and stays built-up. The conversion is found and alerts its rice parcel; the crop cycle
raises nothing; bad series are one error naming the file, nothing stored."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from sqlalchemy import text

from gis.change.detect import DetectionConfig
from gis.change.series import detect_series, persistence
from gis.cli_land import land
from gis.errors import InputFileError
from tests.gis._land_rasters import BARE, BUILT, ORIGIN, VEG, WATER, scene, write_multiband

# 64 x 64 px at 10 m; regions in pixel rows/columns
PADDY = (slice(0, 12), slice(0, 64))  # a rice plain cycling through the seasons
BUILT_OVER = (slice(32, 44), slice(8, 20))  # a paddy built over in June 2024: 14,400 m²
LATE = (slice(48, 60), slice(40, 52))  # a paddy transplanted late (bare in Feb 2025)
FRESH = (slice(48, 60), slice(8, 20))  # built-up seen on the latest date only

#: date -> (paddy, built-over plot, late paddy, fresh plot) spectra
YEAR = {
    dt.date(2024, 2, 10): (WATER, WATER, WATER, WATER),
    dt.date(2024, 5, 1): (VEG, VEG, VEG, VEG),
    dt.date(2024, 6, 20): (BARE, BUILT, BARE, BARE),
    dt.date(2024, 8, 15): (WATER, BUILT, WATER, WATER),
    dt.date(2024, 10, 15): (VEG, BUILT, VEG, VEG),
    dt.date(2025, 2, 12): (WATER, BUILT, BARE, BUILT),
}


def _image(date: dt.date, seed: int) -> np.ndarray:
    img = scene(64, seed=seed).astype(np.float32)
    rng = np.random.default_rng(seed + 100)
    for region, spectrum in zip((PADDY, BUILT_OVER, LATE, FRESH), YEAR[date], strict=True):
        h = region[0].stop - region[0].start
        w = region[1].stop - region[1].start
        noise = 1 + 0.02 * rng.standard_normal((10, h, w))
        img[:, region[0], region[1]] = spectrum[:, None, None] * noise
    return np.clip(img, 1, 10000).astype(np.uint16)


def _write_series(folder: Path, dates=YEAR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_multiband(folder / f"S2_T48QXH_{d:%Y%m%d}T033121.tif", _image(d, seed=i + 1))
        for i, d in enumerate(dates)
    ]


def _px_box(region) -> shapely.Polygon:
    x0, y0 = ORIGIN
    return shapely.box(
        x0 + region[1].start * 10,
        y0 - region[0].stop * 10,
        x0 + region[1].stop * 10,
        y0 - region[0].start * 10,
    )


def _covering(features, region, share=0.5):
    box = _px_box(region)
    return [
        f
        for f in features
        if f["geometry"].intersection(box).area >= share * min(box.area, f["geometry"].area)
    ]


@pytest.fixture(scope="module")
def series_paths(tmp_path_factory):
    # given out of date order on purpose: the series is sorted by date
    paths = _write_series(tmp_path_factory.mktemp("series"))
    return [paths[i] for i in (3, 0, 5, 1, 4, 2)]


@pytest.fixture(scope="module")
def series_result(series_paths):
    return detect_series(series_paths, DetectionConfig(method="cva"))


def test_the_latest_scene_is_compared_with_the_same_season_a_year_earlier(series_result):
    info = series_result.stats["series"]
    assert info["target_date"] == "2025-02-12" and info["reference_date"] == "2024-02-10"
    assert info["reason"].startswith("same season")
    assert [s["date"] for s in info["scenes"]] == sorted(d.isoformat() for d in YEAR)


def test_the_persistent_conversion_is_flagged_and_the_crop_cycle_is_not(series_result):
    feats = series_result.features
    (conv,) = [f for f in feats if f["kind"] == "conversion"]
    assert conv["to_class"] == "built_up" and conv["from_class"] in ("water", "vegetation")
    assert conv["area_m2"] == pytest.approx(14_400, rel=0.15)
    assert _covering([conv], BUILT_OVER)
    assert conv["change_date"] == "2024-06-20" and conv["persistent_dates"] == 4
    # the rice plain is water in both February scenes: no change at all there
    assert not _covering(feats, PADDY, share=0.1)
    # the late paddy (flooded then, bare now) is change, but seasonal, not conversion
    assert {f["kind"] for f in _covering(feats, LATE)} == {"seasonal"}
    # built-up on the latest date only is pending, not a polygon of the result
    assert not _covering(feats, FRESH)
    (pending,) = series_result.stats["series"]["pending"]
    assert pending["to_class"] == "built_up" and pending["observed"][-1] == [
        "2025-02-12",
        "built_up",
    ]


def test_without_the_same_season_the_closest_vegetation_state_is_the_reference(tmp_path):
    # no February 2024: the flooded February 2025 plain is compared with flooded August 2024,
    # not with the harvested (June) or green (May, October) dates
    paths = _write_series(tmp_path, [d for d in YEAR if d != dt.date(2024, 2, 10)])
    res = detect_series(paths, DetectionConfig(method="cva"))
    info = res.stats["series"]
    assert info["reference_date"] == "2024-08-15"
    assert info["reason"].startswith("no scene of the same season")
    assert not _covering(res.features, PADDY, share=0.1)


def test_persistence_rules():
    d = [dt.date(2024, m, 1) for m in (3, 6, 9, 12)]
    ok = persistence(["water", "built_up", "built_up", "built_up"], d, "built_up")
    assert (ok["status"], ok["change_date"], ok["persistent_dates"]) == (
        "confirmed",
        "2024-06-01",
        3,
    )
    # a cloudy date counts neither way
    assert (
        persistence(["water", "built_up", None, "built_up"], d, "built_up")["status"] == "confirmed"
    )
    # built-up, then water again: a flooded field misread, not a conversion
    assert (
        persistence(["built_up", "built_up", "water", "built_up"], d, "built_up")["status"]
        == "pending"
    )
    assert (
        persistence(["built_up", "built_up", "built_up", "bare"], d, "built_up")["status"]
        == "reverted"
    )
    assert persistence(["built_up"] * 4, d, "built_up", min_persist=5)["status"] == "pending"


# ------------------------------------------------------------------------------- bad input
def _err(paths, **kw) -> str:
    with pytest.raises(InputFileError) as exc:
        detect_series(paths, DetectionConfig(method="cva"), **kw)
    return str(exc.value)


def test_a_series_with_one_usable_date_is_one_error(tmp_path):
    paths = _write_series(tmp_path, list(YEAR)[:3])
    for p in paths[1:]:  # nodata everywhere (cloud-masked out)
        with rasterio.open(p, "r+") as ds:
            ds.write(np.zeros((10, 64, 64), np.uint16))
    msg = _err(paths)
    assert "at least two usable dates" in msg and str(paths[0]) in msg
    assert str(paths[1]) in msg and "no valid pixel" in msg


def test_two_scenes_of_one_date_are_refused(tmp_path):
    a, b = _write_series(tmp_path, list(YEAR)[:2])
    c = write_multiband(tmp_path / "copy_20240210.tif", _image(dt.date(2024, 2, 10), 9))
    msg = _err([a, b, c])
    assert str(c) in msg and "same date" in msg


@pytest.mark.parametrize("case", ["level", "bands", "resolution", "sensor"])
def test_scenes_of_different_products_are_refused(tmp_path, case):
    paths = _write_series(tmp_path, list(YEAR)[:3])
    odd = paths[1]
    if case == "level":
        for p, level in zip(paths, ("L2A", "L1C", "L2A"), strict=True):
            with rasterio.open(p, "r+") as ds:
                ds.update_tags(PROCESSING_LEVEL=f"Level-{level[1:]}")
        words = ("processing level L1C", "L2A")
    elif case == "bands":
        write_multiband(odd, _image(dt.date(2024, 5, 1), 2)[:4])  # 4 bands only
        words = ("lacks B06", "not the same product")
    elif case == "resolution":
        write_multiband(odd, _image(dt.date(2024, 5, 1), 2)[:, ::2, ::2], res=20.0)
        words = ("resolution", "20")
    else:
        with rasterio.open(odd, "r+") as ds:
            ds.update_tags(SENSOR="Landsat")
        words = ("sensor Landsat", "one sensor")
    msg = _err(paths)
    assert str(odd) in msg and all(w in msg for w in words), msg


def test_a_scene_that_does_not_overlap_is_refused(tmp_path):
    paths = _write_series(tmp_path, list(YEAR)[:3])
    far = write_multiband(
        paths[2], _image(dt.date(2024, 6, 20), 3), origin=(ORIGIN[0] + 50_000, ORIGIN[1])
    )
    msg = _err(paths)
    assert str(far) in msg and "does not overlap" in msg


def test_a_scene_without_a_date_needs_dates(tmp_path):
    paths = _write_series(tmp_path, list(YEAR)[:2])
    nodate = write_multiband(tmp_path / "scene.tif", _image(dt.date(2024, 6, 20), 3))
    msg = _err([*paths, nodate])
    assert str(nodate) in msg and "--dates" in msg
    res = detect_series(
        [*paths, nodate],
        DetectionConfig(method="cva"),
        dates=[dt.date(2024, 2, 10), dt.date(2024, 5, 1), dt.date(2024, 6, 20)],
    )
    assert res.stats["series"]["target_date"] == "2024-06-20"


def test_two_dated_scenes_can_confirm_nothing_and_say_so(tmp_path):
    a, b = _write_series(tmp_path, [dt.date(2024, 2, 10), dt.date(2025, 2, 12)])
    r = CliRunner().invoke(
        land,
        [
            "detect",
            str(a),
            str(b),
            "--dates",
            "2024-02-10,2025-02-12",
            "--method",
            "cva",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "0 confirmed, 2 pending" in r.output
    assert "no conversion can be confirmed yet" in r.output
    r = CliRunner().invoke(
        land,
        [
            "detect",
            str(a),
            str(b),
            "--dates",
            "2024-02-10,2025-02-12",
            "--method",
            "cva",
            "--quiet",
            "--min-persist",
            "1",
        ],
    )
    assert "2 confirmed, 0 pending" in r.output and "no conversion" not in r.output


# ------------------------------------------------------------------------- stored, with alerts
def _parcels(path: Path) -> Path:
    regions = {"1": BUILT_OVER, "2": LATE, "3": FRESH, "4": (slice(2, 10), slice(4, 20))}
    geoms = [_px_box(r) for r in regions.values()]
    fields = {
        "MaXa": ["13345"] * 4,
        "SoTo": ["7"] * 4,
        "SoThua": list(regions),
        "LoaiDat": ["LUC"] * 4,
    }
    pyogrio.raw.write(
        path,
        shapely.to_wkb(np.array(geoms, dtype=object)),
        [np.array(v, dtype=object) for v in fields.values()],
        list(fields),
        crs="EPSG:32648",
        geometry_type="Polygon",
        driver="GeoJSON",
    )
    return path


@pytest.mark.postgis
def test_stored_series_alerts_only_the_built_over_rice_parcel(connection, series_paths, tmp_path):
    from gis.cadastre import import_cadastre

    import_cadastre(connection, _parcels(tmp_path / "parcels.geojson"), force=True)
    runner = CliRunner()
    obj = SimpleNamespace(engine=lambda: connection)
    r = runner.invoke(
        land,
        ["detect", *map(str, series_paths), "--method", "cva", "--store", "--quiet"],
        obj=obj,
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert "series of 6 scenes (6 usable)" in r.output and "1 confirmed, 1 pending" in r.output
    run_id = connection.execute(text("SELECT max(id) FROM detection_runs")).scalar_one()
    alerts = connection.execute(
        text(
            "SELECT p.parcel_number, a.rule, a.severity, a.observed_to FROM parcel_alerts a "
            "JOIN parcels p ON p.id = a.parcel_id WHERE a.run_id = :r"
        ),
        {"r": run_id},
    ).all()
    assert [(a[0], a[1], a[2], a[3]) for a in alerts] == [
        ("1", "rice_land_lost", "high", "built_up")
    ]
    run = connection.execute(
        text("SELECT parameters, stats FROM detection_runs WHERE id = :r"), {"r": run_id}
    ).one()
    assert len(run.parameters["series"]["scenes"]) == 6
    assert run.stats["series"]["reference_date"] == "2024-02-10"
    # the same series again updates the run; one scene fewer is another run
    r = runner.invoke(
        land,
        ["detect", *map(str, series_paths), "--method", "cva", "--store", "--quiet"],
        obj=obj,
        catch_exceptions=False,
    )
    assert "updated run" in r.output
    r = runner.invoke(
        land,
        ["detect", *map(str, series_paths[:5]), "--method", "cva", "--store", "--quiet"],
        obj=obj,
        catch_exceptions=False,
    )
    assert r.exit_code == 0 and "stored as run" in r.output, r.output


@pytest.mark.postgis
def test_a_bad_series_stores_nothing_but_the_failed_run(connection, tmp_path):
    paths = _write_series(tmp_path / "s", list(YEAR)[:3])
    with rasterio.open(paths[1], "r+") as ds:
        ds.update_tags(SENSOR="Landsat")
    before = connection.execute(text("SELECT count(*) FROM land_changes")).scalar_one()
    mask = tmp_path / "mask.tif"
    r = CliRunner().invoke(
        land,
        [
            "detect",
            *map(str, paths),
            "--method",
            "cva",
            "--store",
            "--quiet",
            "--mask-out",
            str(mask),
        ],
        obj=SimpleNamespace(engine=lambda: connection),
    )
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and str(paths[1]) in lines[0]
    assert not mask.exists()
    assert connection.execute(text("SELECT count(*) FROM land_changes")).scalar_one() == before
    status, error = connection.execute(
        text("SELECT status, error FROM detection_runs ORDER BY id DESC LIMIT 1")
    ).one()
    assert status == "failed" and str(paths[1]) in error
