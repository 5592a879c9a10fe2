"""Issue 14: chips and map tiles a land officer can read. Sentinel-2 reflectance stretched per
band (2-98 %) with a display gamma, one stretch for the before and after of a run so the two
dates compare honestly (real PostGIS, the shipped sample scenes of ``make demo``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from PIL import Image
from rasterio.transform import from_origin
from rio_tiler.io import Reader
from sqlalchemy import text

from gis.alerts import load_rules
from gis.cadastre import import_cadastre
from gis.change.detect import DetectionConfig, detect_changes
from gis.change.store import store_run
from gis.evidence import (
    DISPLAY_GAMMA,
    pair_stretch,
    render_chips,
    scene_stretch,
    to_display,
    write_scene_cog,
)
from gis.imagery import open_scene

REPO = Path(__file__).resolve().parents[2]
LAND = REPO / "data" / "land"


def _luminance(png: bytes) -> np.ndarray:
    """Rec. 709 luminance (0-255) of a PNG's opaque pixels."""
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).astype(np.float64)
    opaque = a[..., 3] == 255
    return (0.2126 * a[..., 0] + 0.7152 * a[..., 1] + 0.0722 * a[..., 2])[opaque]


def test_display_transfer_is_a_clipped_stretch_with_gamma():
    v = np.array([0, 400, 1300, 2200, 5000])
    assert to_display(v, 400, 2200, gamma=1.0).tolist() == [0, 0, 128, 255, 255]
    out = to_display(v, 400, 2200)
    assert out.tolist()[0] == 0 and out.tolist()[-1] == 255
    # the gamma lifts the dark part of the range (vegetation, water) without clipping more
    assert out[2] == round(255 * 0.5 ** (1 / DISPLAY_GAMMA)) and out[2] > 128


@pytest.mark.postgis
class TestStoredChips:
    @pytest.fixture(scope="class")
    def pair(self):
        return detect_changes(
            LAND / "before", LAND / "after_T48QXH_20250418.tif", DetectionConfig(method="cva")
        )

    @pytest.fixture
    def stored(self, connection, pair, tmp_path):
        import_cadastre(connection, LAND / "sample_cadastre.gpkg")
        out = store_run(connection, pair, load_rules(), state_dir=tmp_path / "state")
        rows = (
            connection.execute(
                text(
                    "SELECT e.alert_id, e.moment, e.style, e.path, e.bounds, c.path AS cog, "
                    "c.bands, c.stretch FROM alert_evidence e JOIN parcel_alerts a "
                    "ON a.id = e.alert_id JOIN scene_cogs c ON c.scene_id = e.scene_id "
                    "WHERE a.run_id = :r ORDER BY e.alert_id, e.moment, e.style"
                ),
                {"r": out["run_id"]},
            )
            .mappings()
            .all()
        )
        assert rows, "the sample pair raises alerts with chips"
        return rows

    def test_chips_of_the_sample_scenes_are_neither_dark_nor_washed_out(self, stored):
        """Linearly stretched, the sample's paddies were nearly black (true colour median
        luminance 21-27 of 255); a person reads a chip whose typical pixel is mid-grey."""
        for row in stored:
            lum = _luminance(Path(row["path"]).read_bytes())
            where = f"alert {row['alert_id']} {row['moment']} {row['style']}"
            assert 50 <= np.median(lum) <= 190, where
            assert 60 <= lum.mean() <= 190, where
            assert (lum >= 250).mean() < 0.15, where  # not blown out
            assert (lum <= 5).mean() < 0.15, where  # nor crushed to black

    def test_before_and_after_chips_share_the_runs_stretch(self, stored):
        by_alert: dict[int, dict] = {}
        for row in stored:
            by_alert.setdefault(row["alert_id"], {})[row["moment"], row["style"]] = row
        for alert_id, chips in by_alert.items():
            before, after = chips["before", "truecolor"], chips["after", "truecolor"]
            assert before["stretch"] != after["stretch"]  # each scene has its own range...
            shared = pair_stretch(before["stretch"], after["stretch"])
            for (moment, style), row in chips.items():
                # ...and the stored chip is what the run's one stretch gives, not the scene's
                bounds = tuple(row["bounds"])
                # a box whose chip square is the stored one (chip_bounds: twice its side)
                probe = shapely.box(*bounds).buffer(-(bounds[2] - bounds[0]) / 4, join_style=2)
                with Reader(row["cog"]) as src:
                    want = _chip(src, row["bands"], shared, probe, style, bounds)
                    own = _chip(src, row["bands"], row["stretch"], probe, style, bounds)
                got = np.asarray(Image.open(row["path"]).convert("RGBA"))
                # compare the image itself, away from the outlines drawn on either chip
                plain = ~(_outline(got) | _outline(want) | _outline(own))
                assert plain.mean() > 0.5
                assert np.array_equal(got[plain], want[plain]), (alert_id, moment, style)
                assert not np.array_equal(got[plain], own[plain]), (alert_id, moment, style)


def _outline(rgba: np.ndarray) -> np.ndarray:
    """Pixels in the outline colours (parcel yellow, changes cyan)."""
    from gis.evidence import CHANGE_COLOUR, PARCEL_COLOUR

    rgb = rgba[..., :3]
    return np.all(rgb == PARCEL_COLOUR, axis=-1) | np.all(rgb == CHANGE_COLOUR, axis=-1)


def _chip(src, bands, stretch, parcel, style, bounds) -> np.ndarray:
    for st, png, b in render_chips(src, list(bands), stretch, parcel, []):
        if st == style:
            assert np.allclose(b, bounds, atol=0.01)
            return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    raise AssertionError(style)


def _write_scene(path: Path, bands: np.ndarray, date: str) -> Path:
    """A 4-band (B02, B03, B04, B08) uint16 GeoTIFF on a UTM 48N grid."""
    profile = dict(
        driver="GTiff",
        width=bands.shape[2],
        height=bands.shape[1],
        count=4,
        dtype="uint16",
        crs="EPSG:32648",
        transform=from_origin(605220, 2280860, 10, 10),
        nodata=0,
    )
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(bands)
        ds.descriptions = ("B02", "B03", "B04", "B08")
        ds.update_tags(ACQUISITION_DATE=f"{date}T03:31:21Z", SENSOR="Sentinel-2")
    return path


def test_unchanged_land_has_the_same_colour_on_both_dates(tmp_path):
    """After: the same paddies, plus bright new roofs on a fifth of the scene, which raise the
    after scene's 98th percentile. Each scene stretched on its own, the unchanged paddies of
    the after chip turn darker than before, as if they had changed; with the pair's stretch
    they are identical."""
    rng = np.random.default_rng(14)
    field = np.stack(
        [rng.normal(m, s, (100, 100)) for m, s in ((450, 40), (700, 50), (500, 60), (2600, 300))]
    ).clip(1, None)
    before = field.astype(np.uint16)
    after = before.copy()
    after[:3, :20, :] = 2800  # roofs: bright in the visible bands
    after[3, :20, :] = 2900
    paths = {
        "before": _write_scene(tmp_path / "before.tif", before, "2024-04-20"),
        "after": _write_scene(tmp_path / "after.tif", after, "2025-04-18"),
    }
    cogs = {m: write_scene_cog(open_scene(p), m, tmp_path / "state") for m, p in paths.items()}
    assert cogs["after"].stretch["B04"][1] > cogs["before"].stretch["B04"][1] * 2
    assert scene_stretch(cogs["before"].path) == cogs["before"].stretch
    shared = pair_stretch(cogs["before"].stretch, cogs["after"].stretch)
    parcel = shapely.box(605620, 2280160, 605820, 2280360)  # unchanged paddies only

    def chips(stretch_of) -> dict:
        out = {}
        for m, cog in cogs.items():
            with Reader(str(cog.path)) as src:
                for style, png, _ in render_chips(src, cog.bands, stretch_of(m), parcel, []):
                    out[m, style] = np.asarray(Image.open(io.BytesIO(png)))
        return out

    own = chips(lambda m: cogs[m].stretch)
    same = chips(lambda m: shared)
    for style in ("truecolor", "falsecolor"):
        assert np.array_equal(same["before", style], same["after", style]), style
        assert not np.array_equal(own["before", style], own["after", style]), style
    # with its own stretch the after chip's unchanged paddies look darker than before
    lum_own = {m: own[m, "truecolor"][..., :3].mean() for m in cogs}
    assert lum_own["after"] < lum_own["before"] - 10
