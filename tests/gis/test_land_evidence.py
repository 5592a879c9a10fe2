"""Issue 14, imagery as layers and evidence per alert (real PostGIS, real rasters): the COG of
each scene of a stored run, map tiles rendered from it with rio-tiler, and the before/after
chips of every parcel alert with the parcel outline drawn."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from PIL import Image
from sqlalchemy import text

from gis.alerts import load_rules
from gis.cadastre import import_cadastre
from gis.change.detect import DetectionConfig, detect_changes
from gis.change.store import store_run
from gis.crs import transform_geometries
from gis.evidence import (
    PARCEL_COLOUR,
    EvidenceError,
    make_alert_chips,
    render_tile,
    validate_cog,
)

pytestmark = pytest.mark.postgis

REPO = Path(__file__).resolve().parents[2]
LAND = REPO / "data" / "land"


@pytest.fixture(scope="module")
def demo_pair():
    """The shipped sample pair, detected once (CVA: fast) for the module."""
    return detect_changes(
        LAND / "before", LAND / "after_T48QXH_20250418.tif", DetectionConfig(method="cva")
    )


@pytest.fixture
def stored(connection, demo_pair, tmp_path):
    import_cadastre(connection, LAND / "sample_cadastre.gpkg")
    out = store_run(connection, demo_pair, load_rules(), state_dir=tmp_path / "state")
    return out


def _lonlat_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_a_stored_run_keeps_a_valid_cog_per_scene(connection, stored, tmp_path):
    rows = (
        connection.execute(
            text(
                "SELECT c.* FROM scene_cogs c JOIN detection_runs r ON c.scene_id IN "
                "(r.before_scene_id, r.after_scene_id) WHERE r.id = :r ORDER BY c.scene_id"
            ),
            {"r": stored["run_id"]},
        )
        .mappings()
        .all()
    )
    assert len(rows) == 2 and rows[0]["path"] != rows[1]["path"]
    for row in rows:
        path = Path(row["path"])
        assert path.parent == tmp_path / "state" / "imagery" / "cog"
        assert path.name == f"{row['fingerprint']}.tif"
        validate_cog(path)  # raises unless rio-cogeo says it is a valid COG
        with rasterio.open(path) as ds:
            assert ds.count == 4 and ds.descriptions == ("B02", "B03", "B04", "B08")
            assert ds.profile["tiled"] and ds.overviews(1)  # internal tiles and overviews
            assert ds.crs.to_string() == row["crs"]
        assert row["bands"] == ["B02", "B03", "B04", "B08"]
        assert all(lo < hi for lo, hi in row["stretch"].values())
    # nothing left half-written next to them
    assert not list((tmp_path / "state" / "imagery" / "cog").glob(".*"))


def test_tiles_render_as_png_from_the_cog(connection, stored):
    row = connection.execute(
        text(
            "SELECT c.path, c.bands, c.stretch, ST_X(ST_Centroid(s.footprint)) AS lon, "
            "ST_Y(ST_Centroid(s.footprint)) AS lat FROM scene_cogs c "
            "JOIN imagery_scenes s ON s.id = c.scene_id "
            "JOIN detection_runs r ON r.after_scene_id = c.scene_id WHERE r.id = :r"
        ),
        {"r": stored["run_id"]},
    ).one()
    x, y = _lonlat_tile(row.lon, row.lat, 15)
    images = {}
    for style in ("truecolor", "falsecolor"):
        png = render_tile(row.path, row.bands, row.stretch, 15, x, y, style)
        img = Image.open(io.BytesIO(png))
        assert img.format == "PNG" and img.size == (256, 256) and img.mode == "RGBA"
        a = np.asarray(img)
        assert (a[..., 3] == 255).mean() > 0.2  # the scene covers part of the tile
        assert a[..., :3][a[..., 3] == 255].std() > 10  # a picture, not a flat fill
        images[style] = a
    assert not np.array_equal(images["truecolor"], images["falsecolor"])
    assert render_tile(row.path, row.bands, row.stretch, 15, 0, 0) is None  # far away
    with pytest.raises(EvidenceError, match="unknown style"):
        render_tile(row.path, row.bands, row.stretch, 15, x, y, "ndvi")


def test_low_zoom_tiles_read_only_the_scene(connection, stored):
    """A whole-world z0 tile of a 1 km scene: rio-tiler's tile() warped the tile's full extent
    at the scene's 10 m resolution (a z9 tile took 4 s and 1.3 GB, z5 and z0 never finished,
    a server grew to 4 GB). Now the scene's few pixels, at once, with little memory."""
    import resource
    import time

    row = connection.execute(
        text(
            "SELECT c.path, c.bands, c.stretch, ST_X(ST_Centroid(s.footprint)) AS lon, "
            "ST_Y(ST_Centroid(s.footprint)) AS lat FROM scene_cogs c "
            "JOIN imagery_scenes s ON s.id = c.scene_id "
            "JOIN detection_runs r ON r.after_scene_id = c.scene_id WHERE r.id = :r"
        ),
        {"r": stored["run_id"]},
    ).one()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for z in (0, 5, 9, 12):
        x, y = _lonlat_tile(row.lon, row.lat, z)
        started = time.monotonic()
        png = render_tile(row.path, row.bands, row.stretch, z, x, y, "falsecolor")
        assert time.monotonic() - started < 10, f"z{z} tile took too long"
        a = np.asarray(Image.open(io.BytesIO(png)))
        assert a.shape == (256, 256, 4)
        covered = (a[..., 3] == 255).mean()
        assert 0 < covered < 0.2, f"z{z}: the scene is a small part of a low-zoom tile"
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, f"rendering low-zoom tiles grew the process by {grown_mb:.0f} MB"


def test_every_alert_has_its_chips_with_the_parcel_outline(connection, stored, tmp_path):
    alerts = connection.execute(
        text(
            "SELECT a.id, ST_AsBinary(p.geom) AS geom, Find_SRID('public', 'parcels', 'geom') AS srid "
            "FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id WHERE a.run_id = :r"
        ),
        {"r": stored["run_id"]},
    ).all()
    assert alerts and stored["evidence"]["chips"] == 4 * len(alerts)
    for alert in alerts:
        chips = (
            connection.execute(
                text(
                    "SELECT moment, style, path, width, height, crs, bounds FROM alert_evidence "
                    "WHERE alert_id = :a ORDER BY moment, style"
                ),
                {"a": alert.id},
            )
            .mappings()
            .all()
        )
        assert [(c["moment"], c["style"]) for c in chips] == [
            ("after", "falsecolor"),
            ("after", "truecolor"),
            ("before", "falsecolor"),
            ("before", "truecolor"),
        ]
        for chip in chips:
            path = Path(chip["path"])
            assert path.parent == tmp_path / "state" / "evidence" / f"run-{stored['run_id']}"
            img = np.asarray(Image.open(path).convert("RGB"))
            assert img.shape == (chip["height"], chip["width"], 3) == (384, 384, 3)
            # the parcel outline, transformed storage CRS -> scene CRS, drawn in yellow:
            # sample points along its boundary, each must have a yellow pixel next to it
            parcel = transform_geometries(
                np.array([shapely.from_wkb(bytes(alert.geom))]), alert.srid, chip["crs"]
            )[0]
            minx, miny, maxx, maxy = chip["bounds"]
            ring = shapely.get_parts(parcel)[0].exterior
            hits = 0
            samples = [ring.interpolate(f, normalized=True) for f in np.linspace(0, 1, 24)[:-1]]
            for pt in samples:
                c = int((pt.x - minx) / (maxx - minx) * 384)
                r = int((maxy - pt.y) / (maxy - miny) * 384)
                win = img[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3].reshape(-1, 3)
                hits += bool((win == PARCEL_COLOUR).all(axis=1).any())
            assert hits >= 0.9 * len(samples), (path, hits)
            # and the image itself is there around it (not a blank chip)
            assert img.std() > 10
    # the published view links the chips
    row = connection.execute(
        text("SELECT evidence_before, evidence_after FROM api_parcel_alerts WHERE id = :a"),
        {"a": alerts[0].id},
    ).one()
    assert (
        row.evidence_before
        == f"/collections/parcel-alerts/items/{alerts[0].id}/evidence/before.png"
    )
    assert row.evidence_after.endswith("/evidence/after.png")


def test_rolled_back_store_leaves_no_files(connection, demo_pair, tmp_path):
    import_cadastre(connection, LAND / "sample_cadastre.gpkg")
    state = tmp_path / "state"
    sp = connection.begin_nested()
    out = store_run(connection, demo_pair, load_rules(), state_dir=state)
    assert out["evidence"]["chips"] > 0 and any((state / "evidence").rglob("*.png"))
    sp.rollback()
    assert not list(state.rglob("*.png")) and not list(state.rglob("*.tif"))


def test_chip_errors_name_the_alert(connection, stored, tmp_path):
    from gis.errors import RecordNotFoundError

    with pytest.raises(RecordNotFoundError, match="999999999"):
        make_alert_chips(connection, 999999999, tmp_path)
    alert_id = connection.execute(
        text("SELECT min(id) FROM parcel_alerts WHERE run_id = :r"), {"r": stored["run_id"]}
    ).scalar()
    # a parcel far outside the scene: one clear error, nothing stored for it
    connection.execute(
        text(
            "UPDATE parcels SET geom = ST_Translate(geom, 50000, 0) WHERE id = "
            "(SELECT parcel_id FROM parcel_alerts WHERE id = :a)"
        ),
        {"a": alert_id},
    )
    before = (
        connection.execute(
            text("SELECT path FROM alert_evidence WHERE alert_id = :a"), {"a": alert_id}
        )
        .scalars()
        .all()
    )
    with pytest.raises(
        EvidenceError, match=rf"Alert {alert_id}: scene .* does not cover its parcel"
    ):
        make_alert_chips(connection, alert_id, tmp_path / "other")
    assert not (tmp_path / "other").exists() or not list((tmp_path / "other").rglob("*.png"))
    assert (
        connection.execute(
            text("SELECT path FROM alert_evidence WHERE alert_id = :a"), {"a": alert_id}
        )
        .scalars()
        .all()
        == before
    )
    # a run without stored imagery
    connection.execute(text("DELETE FROM scene_cogs"))
    with pytest.raises(
        EvidenceError, match=rf"Alert {alert_id}: its run \d+ has no stored before imagery"
    ):
        make_alert_chips(connection, alert_id, tmp_path)


def test_a_file_that_is_not_a_cog_is_refused_by_name(tmp_path):
    path = tmp_path / "striped.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=600,
        height=600,
        count=1,
        dtype="uint16",
        crs="EPSG:32648",
        transform=rasterio.transform.from_origin(6e5, 2.28e6, 10, 10),
    ) as ds:
        ds.write(np.ones((1, 600, 600), np.uint16))
    with pytest.raises(EvidenceError, match="striped.tif: not a cloud-optimised GeoTIFF"):
        validate_cog(path)


@pytest.mark.skipif(not (REPO / "gis" / "models").exists(), reason="no shipped models")
def test_the_demo_stage_leaves_imagery_and_chips(connection, tmp_path):
    from types import SimpleNamespace

    from gis.demo import demo_stage

    lines: list[str] = []
    ctx = SimpleNamespace(
        engine=connection,
        database_url="",
        state_dir=tmp_path,
        data_dir=REPO / "data",
        echo=lines.append,
    )
    demo_stage(ctx)
    run_id = connection.execute(text("SELECT max(id) FROM detection_runs")).scalar()
    alerts = connection.execute(
        text("SELECT count(*) FROM parcel_alerts WHERE run_id = :r"), {"r": run_id}
    ).scalar()
    assert alerts > 0
    assert len(list((tmp_path / "imagery" / "cog").glob("*.tif"))) == 2
    assert len(list((tmp_path / "evidence" / f"run-{run_id}").glob("*.png"))) == 4 * alerts
    assert any(
        f"/imagery/runs/{run_id}" in ln and f"{4 * alerts} alert chips" in ln for ln in lines
    )
