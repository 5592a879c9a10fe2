"""The STAC source against a real stac-fastapi-pgstac on 127.0.0.1 and COGs served over HTTP
with Range requests: discovery, window reads, SCL cloud rejection, no re-processing, the best
pair detected with parcel alerts, and the faults (500, time-out, flaky, missing and truncated
assets)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
import rasterio
from sqlalchemy import text

from gis.cadastre import import_cadastre
from gis.imagery import MODEL_BANDS, open_scene
from gis.intake import IntakeSettings, poll
from gis.settings import LandSettings
from tests.gis.intake import _scenes as sc

pytestmark = [pytest.mark.postgis, pytest.mark.slow]

UTC = dt.UTC


def _seed_area(conn, code: str, province: str, bbox: tuple[float, float, float, float]) -> None:
    w, s, e, n = bbox
    conn.execute(
        text(
            "INSERT INTO admin_units (code, level, name, name_ascii, province_code, valid_from, geom) "
            "VALUES (:c, 'commune', :n1, :n2, :p, DATE '2020-01-01', "
            "ST_Multi(ST_MakeEnvelope(:w, :s, :e, :n, 4326)))"
        ),
        {"c": code, "n1": code, "n2": code, "p": province, "w": w, "s": s, "e": e, "n": n},
    )


def _rows(conn, collection: str) -> dict[str, dict]:
    rows = (
        conn.execute(
            text("SELECT * FROM imagery_intake WHERE source = 'stac' AND collection = :c"),
            {"c": collection},
        )
        .mappings()
        .all()
    )
    return {r["item_id"]: dict(r) for r in rows}


def _settings(tmp_path: Path, url: str, collection: str, **kw) -> IntakeSettings:
    base = {
        "stac_url": url,
        "stac_collection": collection,
        "dir": tmp_path / "scenes",
        "stac_retries": 2,
        "stac_backoff_s": 0.05,
        "stac_timeout_s": 10,
        "retry_after_s": 0,
        "detect": False,
    }
    base.update(kw)
    return IntakeSettings(_env_file=None, **base)


@pytest.fixture(scope="module")
def paris(cog_server, shared_data):
    """OSCD Paris as COGs: 2016-11-30 and 2017-11-07 clear, 2017-11-12 clouded over all."""
    city = shared_data / "oscd" / "paris"
    root = cog_server.root
    out = {
        "p1": sc.oscd_cogs(city, "imgs_1", root / "paris" / "p1"),
        "p2": sc.oscd_cogs(city, "imgs_2", root / "paris" / "p2"),
        "cloudy": sc.oscd_cogs(city, "imgs_2", root / "paris" / "cloudy", cloud_share=1.0),
    }
    w, s, e, n = sc.footprint_lonlat(out["p1"]["B02"])
    # a commune in the middle: a quarter of the width and height of the image
    area = (w + (e - w) * 0.4, s + (n - s) * 0.4, w + (e - w) * 0.65, s + (n - s) * 0.65)
    return out, area


def test_discovers_reads_only_the_window_and_rejects_the_clouded_scene(
    stac_api, cog_server, paris, connection, tmp_path
):
    files, area = paris
    cid = "t-paris"
    root, url = cog_server.root, cog_server.url
    items = [
        sc.item(
            cid,
            "S2A_31UDQ_20161130_0_L2A",
            dt.datetime(2016, 11, 30, 10, 57, tzinfo=UTC),
            files["p1"],
            root,
            url,
            4.0,
            keys=sc.EARTH_SEARCH_KEYS,
        ),
        sc.item(
            cid,
            "S2B_31UDQ_20171107_0_L2A",
            dt.datetime(2017, 11, 7, 10, 52, tzinfo=UTC),
            files["p2"],
            root,
            url,
            6.5,
            keys=sc.EARTH_SEARCH_KEYS,
            platform="sentinel-2b",
        ),
        # the catalogue says 30 % for the whole tile; SCL says the commune is under cloud
        sc.item(
            cid,
            "S2A_31UDQ_20171112_0_L2A",
            dt.datetime(2017, 11, 12, 10, 57, tzinfo=UTC),
            files["cloudy"],
            root,
            url,
            30.0,
            keys=sc.EARTH_SEARCH_KEYS,
        ),
        # over the catalogue's cloud limit: never read
        sc.item(
            cid,
            "S2A_31UDQ_20171122_0_L2A",
            dt.datetime(2017, 11, 22, 10, 57, tzinfo=UTC),
            files["p2"],
            root,
            url,
            95.0,
            keys=sc.EARTH_SEARCH_KEYS,
        ),
    ]
    stac_api.load(sc.collection(cid), items)
    _seed_area(connection, "T-PARIS-1", "T-PARIS", area)
    settings = _settings(tmp_path, stac_api.url, cid, province_code="T-PARIS", stac_max_cloud=40)
    cog_server.clear()

    (res,) = poll(connection, settings, now=dt.datetime(2017, 12, 1, tzinfo=UTC))

    assert res.error is None, res.error
    assert (res.discovered, res.processed, res.rejected, res.failed) == (3, 2, 1, 0)
    rows = _rows(connection, cid)
    assert set(rows) == {i["id"] for i in items[:3]}
    clouded = rows["S2A_31UDQ_20171112_0_L2A"]
    assert clouded["status"] == "rejected" and clouded["usable_share"] == 0.0
    assert "only 0% of the area is usable" in clouded["reason"]
    assert clouded["local_path"] is None
    # the clouded scene: its SCL was read, never a reflectance band
    assert cog_server.requests_for("/paris/cloudy/SCL.tif")
    assert not cog_server.requests_for("/paris/cloudy/B02.tif")

    p2 = rows["S2B_31UDQ_20171107_0_L2A"]
    assert p2["status"] == "processed" and p2["usable_share"] == 1.0
    assert p2["acquired_at"] == dt.datetime(2017, 11, 7, 10, 52, tzinfo=UTC)
    assert p2["cloud_cover"] == 6.5 and p2["attempts"] == 1
    # a band folder `ioc land detect` reads: the window over the commune only
    scene = open_scene(p2["local_path"])
    assert set(MODEL_BANDS) <= set(scene.bands) and scene.scl is not None
    assert scene.acquired_at.date() == dt.date(2017, 11, 7) and scene.sensor == "Sentinel-2"
    with rasterio.open(files["p2"]["B02"]) as full:
        assert scene.grid.width < full.width / 3 and scene.grid.height < full.height / 3
        sw, ss, se, sn = scene.grid.bounds
        assert sw <= area[0] + abs(full.transform.a) and se >= area[2] - abs(full.transform.a)
        # same pixels as the source's window
        win = full.window(*scene.grid.bounds)
        expected = full.read(1, window=win.round_offsets().round_lengths())
    with rasterio.open(scene.bands["B02"].path) as got:
        assert (got.read(1) == expected).all()

    # read over HTTP range requests, well below the size of the files
    b04 = cog_server.requests_for("/paris/p2/B04.tif")
    gets = [r for r in b04 if r.method == "GET"]
    assert gets and all(r.status == 206 and r.range for r in gets)
    size = files["p2"]["B04"].stat().st_size
    sent = sum(r.sent for r in gets)
    assert sent < 0.5 * size, (sent, size)
    print(f"B04 window: {sent} of {size} bytes in {len(gets)} range requests")
    item_gets = [r for r in cog_server.requests_for("/paris/p2/") if r.method == "GET"]
    item_sent = sum(r.sent for r in item_gets)
    item_size = sum(f.stat().st_size for f in files["p2"].values())
    assert item_sent < 0.5 * item_size
    print(
        f"whole item (10 bands + SCL): {item_sent} of {item_size} bytes in "
        f"{len(item_gets)} range requests"
    )

    # the next poll reads nothing again
    cog_server.clear()
    (again,) = poll(connection, settings, now=dt.datetime(2017, 12, 1, tzinfo=UTC))
    assert (again.processed, again.rejected, again.skipped) == (0, 0, 3)
    assert not [r for r in cog_server.log if "/paris/" in r.path]
    assert {k: v["attempts"] for k, v in _rows(connection, cid).items()} == {
        i["id"]: 1 for i in items[:3]
    }


@pytest.fixture(scope="module")
def demo(cog_server):
    root = cog_server.root / "demo"
    return {
        "before": sc.demo_cogs("before", root / "before"),
        "before_cloudier": sc.demo_cogs("before", root / "before_cloudier", cloud_share=0.4),
        "after": sc.demo_cogs("after", root / "after"),
    }


def test_best_pair_is_detected_with_parcel_alerts_once(
    stac_api, cog_server, demo, connection, tmp_path
):
    cid = "t-demo"
    root, url = cog_server.root, cog_server.url

    def it(iid, day, files, cloud):
        return sc.item(
            cid, iid, dt.datetime.combine(day, dt.time(3, 31), UTC), files, root, url, cloud
        )

    items = [
        it("S2A_48QXH_20240420_0_L2A", dt.date(2024, 4, 20), demo["before"], 12.0),
        it("S2B_48QXH_20240425_0_L2A", dt.date(2024, 4, 25), demo["before_cloudier"], 3.0),
        it("S2A_48QXH_20241015_0_L2A", dt.date(2024, 10, 15), demo["before"], 1.0),
        it("S2B_48QXH_20250418_0_L2A", dt.date(2025, 4, 18), demo["after"], 8.0),
    ]
    stac_api.load(sc.collection(cid), items)
    w, s, e, n = sc.footprint_lonlat(demo["after"]["B02"])
    _seed_area(connection, "T-DEMO-1", "T-DEMO", (w - 0.001, s - 0.001, e + 0.001, n + 0.001))
    import_cadastre(connection, sc.LAND / "sample_cadastre.gpkg")
    settings = _settings(tmp_path, stac_api.url, cid, province_code="T-DEMO", detect=True)

    stac_res, det = poll(
        connection,
        settings,
        land=LandSettings(_env_file=None, detector="cva"),
        now=dt.datetime(2025, 5, 1, tzinfo=UTC),
    )

    assert stac_res.processed == 4 and det.error is None
    assert det.detections == 1 and det.detections_failed == 0, det.details
    pair = (
        connection.execute(
            text(
                "SELECT b.item_id AS before, a.item_id AS after, p.status, p.detection_run_id, p.alerts "
                "FROM imagery_intake_pairs p JOIN imagery_intake b ON b.id = p.before_id "
                "JOIN imagery_intake a ON a.id = p.after_id WHERE a.collection = :c"
            ),
            {"c": cid},
        )
        .mappings()
        .one()
    )
    # same season a year before, the clear one (not the cloudier 25 April, not October)
    assert pair["before"] == "S2A_48QXH_20240420_0_L2A"
    assert pair["after"] == "S2B_48QXH_20250418_0_L2A"
    assert pair["status"] == "succeeded" and pair["alerts"] == det.alerts >= 1
    run = connection.execute(
        text("SELECT status, method FROM detection_runs WHERE id = :i"),
        {"i": pair["detection_run_id"]},
    ).one()
    assert tuple(run) == ("succeeded", "cva")
    rules = {
        tuple(r)
        for r in connection.execute(
            text(
                "SELECT p.land_use_code_raw, a.rule FROM parcel_alerts a JOIN parcels p "
                "ON p.id = a.parcel_id WHERE a.run_id = :r"
            ),
            {"r": pair["detection_run_id"]},
        )
    }
    assert ("LUC", "rice_land_lost") in rules

    # the next poll: nothing new, no second detection of the same pair
    stac_res, det = poll(
        connection,
        settings,
        land=LandSettings(_env_file=None, detector="cva"),
        now=dt.datetime(2025, 5, 1, tzinfo=UTC),
    )
    assert stac_res.processed == 0 and det.detections == 0
    assert (
        connection.execute(
            text(
                "SELECT count(*) FROM imagery_intake_pairs p JOIN imagery_intake a ON a.id = p.after_id "
                "WHERE a.collection = :c"
            ),
            {"c": cid},
        ).scalar_one()
        == 1
    )


def test_catalogue_answering_500_is_retried_then_reported(fault_server, connection, tmp_path):
    bad = fault_server("error")
    connection.execute(
        text(
            "INSERT INTO imagery_intake (source, collection, item_id, status, local_path) "
            "VALUES ('stac', 'kept', 'earlier-item', 'processed', '/x')"
        )
    )
    settings = _settings(
        tmp_path,
        bad.url,
        "t-none",
        bbox=(105.9, 20.4, 106.0, 20.5),
        stac_retries=2,
        stac_backoff_s=0.05,
    )
    report = poll(connection, settings)
    (res,) = report
    assert res.error is not None and "failed after 3 attempt(s)" in res.error
    # what the scheduler records: the counts and the error sentence
    assert report.errors == [f"stac: {res.error}"] and not report.ok
    assert report.as_dict()["errors"] == report.errors
    assert report.as_dict()["stac"]["processed"] == 0
    assert "HTTP 500" in res.error and bad.url in res.error
    assert bad.requests == 3
    assert (
        connection.execute(
            text("SELECT status FROM imagery_intake WHERE item_id = 'earlier-item'")
        ).scalar_one()
        == "processed"
    )


def test_catalogue_timing_out_is_reported_quickly(fault_server, connection, tmp_path):
    slow = fault_server("slow", delay=20)
    settings = _settings(
        tmp_path,
        slow.url,
        "t-none",
        bbox=(105.9, 20.4, 106.0, 20.5),
        stac_retries=1,
        stac_backoff_s=0.05,
        stac_timeout_s=0.5,
    )
    t0 = time.monotonic()
    (res,) = poll(connection, settings)
    assert time.monotonic() - t0 < 10
    assert res.error is not None and "no answer within 0.5 s" in res.error
    assert slow.requests == 2


def test_flaky_catalogue_is_retried_with_backoff(
    stac_api, cog_server, demo, fault_server, connection, tmp_path
):
    cid = "t-flaky"
    stac_api.load(
        sc.collection(cid),
        [
            sc.item(
                cid,
                "S2B_48QXH_20250418_0_L2A",
                dt.datetime(2025, 4, 18, 3, 31, tzinfo=UTC),
                demo["after"],
                cog_server.root,
                cog_server.url,
                8.0,
            )
        ],
    )
    flaky = fault_server("flaky", failures=2, upstream=stac_api.url)
    settings = _settings(
        tmp_path,
        flaky.url,
        cid,
        bbox=tuple(sc.footprint_lonlat(demo["after"]["B02"])),
        stac_retries=3,
        stac_backoff_s=0.05,
    )
    (res,) = poll(connection, settings, now=dt.datetime(2025, 5, 1, tzinfo=UTC))
    assert res.error is None and res.processed == 1
    assert flaky.requests >= 4  # 2 answered 503, then the landing page and the search


def test_missing_truncated_and_unreachable_assets(
    stac_api, cog_server, demo, fault_server, connection, tmp_path
):
    cid = "t-assets"
    root, url = cog_server.root, cog_server.url
    trunc = dict(demo["after"])
    cut = root / "demo" / "truncated" / "B08.tif"
    cut.parent.mkdir(parents=True, exist_ok=True)
    data = demo["after"]["B08"].read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.3)])
    trunc["B08"] = cut
    down = fault_server("error")
    when = dt.datetime(2025, 4, 18, 3, 31, tzinfo=UTC)
    items = [
        sc.item(
            cid,
            "missing-asset",
            when,
            demo["after"],
            root,
            url,
            5.0,
            href_override={"B04": f"{url}/demo/nowhere/B04.tif"},
        ),
        sc.item(cid, "truncated-asset", when, trunc, root, url, 5.0),
        sc.item(
            cid,
            "server-down",
            when,
            demo["after"],
            root,
            url,
            5.0,
            href_override={"B05": f"{down.url}/B05.tif"},
        ),
        sc.item(
            cid,
            "no-band",
            when,
            {k: v for k, v in demo["after"].items() if k != "B11"},
            root,
            url,
            5.0,
        ),
    ]
    stac_api.load(sc.collection(cid), items)
    bbox = tuple(sc.footprint_lonlat(demo["after"]["B02"]))
    settings = _settings(
        tmp_path,
        stac_api.url,
        cid,
        bbox=bbox,
        stac_retries=1,
        stac_backoff_s=0.05,
        max_attempts=2,
        retry_after_s=3600,
    )
    now = dt.datetime(2025, 5, 1, tzinfo=UTC)
    (res,) = poll(connection, settings, now=now)
    assert (res.processed, res.rejected, res.failed) == (0, 3, 1), res.details
    rows = _rows(connection, cid)
    assert "B04" in rows["missing-asset"]["reason"]
    assert "missing on the server" in rows["missing-asset"]["reason"]
    assert "truncated or corrupt" in rows["truncated-asset"]["reason"]
    assert "B08" in rows["truncated-asset"]["reason"]
    assert "no asset for band(s) B11" in rows["no-band"]["reason"]
    down_row = rows["server-down"]
    assert down_row["status"] == "failed" and "500" in down_row["reason"]
    assert down.requests >= 2, down.requests  # GDAL retried the asset before giving up
    assert down_row["next_attempt_at"] > dt.datetime.now(UTC) + dt.timedelta(minutes=50)
    # nothing half-written is left behind
    left = sorted(p.name for p in (tmp_path / "scenes").rglob("*") if p.is_dir())
    assert left == [cid], left

    # the failed one waits for its turn ...
    (res,) = poll(connection, settings, now=now)
    assert res.skipped == 4 and res.failed == 0
    # ... and once due, is tried again; at the attempt limit it is given up with the reason
    connection.execute(
        text("UPDATE imagery_intake SET next_attempt_at = now() WHERE item_id = 'server-down'")
    )
    (res,) = poll(connection, settings, now=now)
    assert res.rejected == 1
    row = _rows(connection, cid)["server-down"]
    assert row["status"] == "rejected" and row["attempts"] == 2
    assert "gave up after 2 attempts" in row["reason"]


def test_local_catalogue_made_with_the_tool_is_taken_and_detected(
    stac_api, cog_server, connection, tmp_path, capsys
):
    """The operator's path (docs/imagery-intake.md): scenes on disk → COGs + items with
    ``python -m gis.intake.catalogue`` → pypgstac → the intake, detection and alerts."""
    from gis.intake.catalogue import main

    cid = "t-tool"
    out = cog_server.root / "tool"
    items_file, coll_file = tmp_path / "items.ndjson", tmp_path / "collection.json"
    rc = main(
        [
            str(sc.LAND / "before"),
            str(next(sc.LAND.glob("after_*.tif"))),
            "--out-dir",
            str(out),
            "--base-url",
            f"{cog_server.url}/tool",
            "--collection",
            cid,
            "--items",
            str(items_file),
            "--collection-file",
            str(coll_file),
            "--blocksize",
            "64",
        ]
    )
    assert rc == 0
    items = [json.loads(line) for line in items_file.read_text().splitlines()]
    assert [i["properties"]["datetime"][:10] for i in items] == ["2024-04-20", "2025-04-18"]
    assert "SCL" in items[0]["assets"] and items[0]["properties"]["eo:cloud_cover"] > 0
    assert "SCL" not in items[1]["assets"]  # the multi-band after image has none:
    assert items[1]["properties"]["eo:cloud_cover"] == 0.0  # spectral test, no thick cloud
    with rasterio.open(out / items[1]["id"] / "B04.tif") as ds:
        assert ds.profile["tiled"] and ds.overviews(1) is not None
    stac_api.load(json.loads(coll_file.read_text()), items)
    import_cadastre(connection, sc.LAND / "sample_cadastre.gpkg")
    settings = _settings(
        tmp_path,
        stac_api.url,
        cid,
        detect=True,
        bbox=tuple(json.loads(coll_file.read_text())["extent"]["spatial"]["bbox"][0]),
    )
    stac_res, det = poll(
        connection,
        settings,
        land=LandSettings(_env_file=None, detector="cva"),
        now=dt.datetime(2025, 5, 1, tzinfo=UTC),
    )
    assert stac_res.processed == 2 and det.detections == 1 and det.alerts >= 1, (
        stac_res.details,
        det.details,
    )
    no_scl = _rows(connection, cid)[items[1]["id"]]
    assert no_scl["properties"]["scl"].startswith("no SCL asset")

    # a scene without a date is one clear error
    (tmp_path / "undated").mkdir()
    from tests.gis._land_rasters import scene, write_multiband

    write_multiband(tmp_path / "undated" / "scene.tif", scene(32))
    rc = main(
        [
            str(tmp_path / "undated" / "scene.tif"),
            "--out-dir",
            str(tmp_path / "o"),
            "--base-url",
            "http://x",
            "--collection",
            "c",
        ]
    )
    assert rc == 2 and "acquisition date unknown" in capsys.readouterr().err


def test_unusable_scene_folder_or_unknown_area_is_one_clear_error(
    fault_server, connection, tmp_path
):
    never = fault_server("error")  # must not be asked
    (tmp_path / "a_file").write_text("x")
    settings = _settings(
        tmp_path,
        never.url,
        "t-none",
        bbox=(105.9, 20.4, 106.0, 20.5),
        dir=tmp_path / "a_file" / "scenes",
    )
    (res,) = poll(connection, settings)
    assert res.error.startswith(f"cannot write scenes into {tmp_path / 'a_file' / 'scenes'}")
    settings = _settings(tmp_path, never.url, "t-none", province_code="NO-SUCH")
    (res,) = poll(connection, settings)
    assert res.error.startswith(
        "No current administrative unit of province NO-SUCH with a geometry is stored"
    )
    assert never.requests == 0
