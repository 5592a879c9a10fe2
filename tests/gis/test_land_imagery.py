"""Imagery input: band folders, multi-band files, grids, masks and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from gis.errors import CRSError, InputFileError
from gis.imagery import (
    MODEL_BANDS,
    SceneReader,
    band_statistics,
    check_alignment,
    open_scene,
    read_full,
)
from tests.gis._land_rasters import ORIGIN, scene, write_band_folder, write_multiband


def test_band_folder_resamples_20m_bands_to_the_10m_grid(tmp_path):
    data = scene(32)
    s = open_scene(write_band_folder(tmp_path / "b", data))
    assert set(MODEL_BANDS) <= set(s.bands)
    assert (s.grid.width, s.grid.height) == (32, 32)
    assert s.grid.transform.a == 10.0
    assert s.acquired_at is not None and s.acquired_at.year == 2024
    values, valid = read_full(s, s.grid, MODEL_BANDS)
    assert values.shape == (10, 32, 32) and valid.all()
    # a 10 m band is read as stored; a 20 m band is close to the 10 m truth
    assert np.array_equal(values[0], data[0])
    b11 = MODEL_BANDS.index("B11")
    assert np.abs(values[b11, 8:24, 8:24] - data[b11, 8:24, 8:24]).mean() < 100


def test_multiband_by_description_and_by_count(tmp_path):
    data = scene(16)
    named = open_scene(write_multiband(tmp_path / "n.tif", data))
    unnamed = open_scene(write_multiband(tmp_path / "u.tif", data, describe=False))
    assert named.bands["B8A"].index == 8 and unnamed.bands["B8A"].index == 8
    four = open_scene(write_multiband(tmp_path / "f.tif", data[:4], describe=False))
    assert sorted(four.bands) == ["B02", "B03", "B04", "B08"]  # the four 10 m bands


def test_after_on_another_grid_is_reprojected_onto_before(tmp_path):
    data = scene(40)
    before = open_scene(write_multiband(tmp_path / "b.tif", data))
    # same place, shifted by 3 pixels and in geographic coordinates
    shifted = write_multiband(tmp_path / "a.tif", data, origin=(ORIGIN[0] + 30, ORIGIN[1]))
    after = open_scene(shifted)
    check_alignment(before, after)
    values, valid = read_full(after, before.grid, MODEL_BANDS)
    assert values.shape == (10, 40, 40)
    assert not valid[:, :3].any() and valid[:, 4:].all()
    assert np.allclose(values[0, :, 10], data[0, :, 7])
    with rasterio.open(shifted) as src:
        from rasterio.warp import calculate_default_transform, reproject

        tf, w, h = calculate_default_transform(
            src.crs, "EPSG:4326", src.width, src.height, *src.bounds
        )
        out = np.zeros((10, h, w), np.uint16)
        reproject(
            data,
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=tf,
            dst_crs="EPSG:4326",
        )
    geo = open_scene(
        write_multiband(tmp_path / "g.tif", out, crs="EPSG:4326", origin=(tf.c, tf.f), res=tf.a)
    )
    check_alignment(before, geo)
    _, gvalid = read_full(geo, before.grid, MODEL_BANDS)
    assert gvalid[:, 6:].mean() > 0.9


def test_scl_masks_clouds(tmp_path):
    scl = np.full((16, 16), 4, np.uint8)
    scl[:4, :4] = 9
    s = open_scene(write_band_folder(tmp_path / "c", scene(32), scl=scl))
    assert s.scl is not None
    _, valid = read_full(s, s.grid, MODEL_BANDS)
    assert not valid[:8, :8].any() and valid[8:, 8:].all()
    _, _, valid_frac, cloud_frac = band_statistics(s, s.grid, MODEL_BANDS)
    assert cloud_frac == pytest.approx(64 / 1024)


def test_windowed_read_matches_full_read(tmp_path):
    s = open_scene(write_band_folder(tmp_path / "w", scene(32)))
    full, _ = read_full(s, s.grid, MODEL_BANDS)
    with SceneReader(s, s.grid) as r:
        part, _ = r.read(Window(8, 4, 16, 20), MODEL_BANDS)
    assert np.array_equal(part, full[:, 4:24, 8:24])


# --- bad input: one clear error naming the file -------------------------------------------


def test_missing_band_names_the_scene(tmp_path):
    s = open_scene(write_band_folder(tmp_path / "m", scene(16), skip=("B11",)))
    with pytest.raises(InputFileError, match=r"m: missing band\(s\) B11"):
        s.require(MODEL_BANDS)


def test_corrupt_tiff(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\x00garbage" * 10)
    with pytest.raises(InputFileError, match="bad.tif"):
        open_scene(bad)


def test_truncated_tiff_fails_on_read_naming_the_file(tmp_path):
    path = tmp_path / "trunc.tif"
    write_multiband(path, scene(64, seed=3))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputFileError, match="trunc.tif"):
        s = open_scene(path)
        read_full(s, s.grid, MODEL_BANDS)


def test_no_overlap(tmp_path):
    a = open_scene(write_multiband(tmp_path / "a.tif", scene(16)))
    b = open_scene(
        write_multiband(tmp_path / "b.tif", scene(16), origin=(ORIGIN[0] + 50_000, ORIGIN[1]))
    )
    with pytest.raises(InputFileError, match="does not overlap"):
        check_alignment(a, b)


def test_raster_without_crs(tmp_path):
    path = tmp_path / "nocrs.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=10,
        dtype="uint16",
        transform=rasterio.transform.from_origin(0, 8, 1, 1),
    ) as dst:
        dst.write(np.ones((10, 8, 8), np.uint16))
    with pytest.raises(CRSError, match="nocrs.tif: the raster has no coordinate reference"):
        open_scene(path)


def test_all_nodata(tmp_path):
    s = open_scene(write_multiband(tmp_path / "empty.tif", np.zeros((10, 8, 8), np.uint16)))
    with pytest.raises(InputFileError, match="empty.tif: the image has no valid pixels"):
        band_statistics(s, s.grid, MODEL_BANDS)


def test_missing_path(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        open_scene(tmp_path / "nope")
