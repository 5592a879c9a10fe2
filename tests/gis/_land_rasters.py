"""Tiny real rasters for the land tests (written with rasterio into tmp_path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from gis.imagery import MODEL_BANDS

VEG = np.array([350, 700, 400, 1100, 2600, 3200, 3500, 3600, 2000, 1000], np.float32)
BUILT = np.array([1300, 1450, 1550, 1650, 1750, 1850, 1950, 2000, 2300, 2100], np.float32)
WATER = np.array([600, 650, 450, 400, 350, 330, 300, 290, 150, 100], np.float32)
BARE = np.array([1100, 1400, 1700, 1900, 2100, 2250, 2350, 2450, 3000, 2500], np.float32)

ORIGIN = (600000.0, 2280000.0)  # UTM 48N, former Hà Nam


def scene(
    size: int = 64, seed: int = 0, changed: tuple[slice, slice] | None = None, to=BUILT
) -> np.ndarray:
    """(10, size, size) uint16 reflectances of a patchwork landscape (8 px blocks of
    vegetation, built-up, water, bare: the same for every ``seed``), per-pixel noise from
    ``seed``; the pixels of ``changed`` are set to ``to``."""
    land = np.random.default_rng(12345)
    classes = np.stack([VEG, BUILT, WATER, BARE])
    blocks = land.choice(4, size=(-(-size // 8), -(-size // 8)), p=[0.6, 0.15, 0.1, 0.15])
    cover = np.kron(blocks, np.ones((8, 8), dtype=int))[:size, :size]
    img = classes[cover].transpose(2, 0, 1).astype(np.float32)
    rng = np.random.default_rng(seed)
    if changed is not None:
        img[:, changed[0], changed[1]] = to[:, None, None]
    img *= 1 + 0.02 * rng.standard_normal(img.shape).astype(np.float32)
    return np.clip(img, 1, 10000).astype(np.uint16)


def write_multiband(
    path: Path,
    data: np.ndarray,
    crs: str = "EPSG:32648",
    origin=ORIGIN,
    res: float = 10.0,
    describe: bool = True,
    nodata: int | None = 0,
) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs=crs,
        transform=from_origin(origin[0], origin[1], res, res),
        nodata=nodata,
    ) as dst:
        dst.write(data)
        if describe:
            for i, b in enumerate(MODEL_BANDS[: data.shape[0]], start=1):
                dst.set_band_description(i, b)
    return path


def write_band_folder(
    folder: Path,
    data: np.ndarray,
    stem: str = "T48QXH_20240420T033121",
    skip: tuple[str, ...] = (),
    scl: np.ndarray | None = None,
) -> Path:
    """Sentinel-2-style folder: 10 m bands at 10 m, 20 m bands block-averaged to 20 m."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = data.shape[1:]
    for i, band in enumerate(MODEL_BANDS):
        if band in skip:
            continue
        arr, res = data[i], 10.0
        if band in ("B05", "B06", "B07", "B8A", "B11", "B12"):
            arr = arr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).astype(np.uint16)
            res = 20.0
        with rasterio.open(
            folder / f"{stem}_{band}.tif",
            "w",
            driver="GTiff",
            width=arr.shape[1],
            height=arr.shape[0],
            count=1,
            dtype="uint16",
            crs="EPSG:32648",
            transform=from_origin(*ORIGIN, res, res),
            nodata=0,
        ) as dst:
            dst.write(arr, 1)
    if scl is not None:
        with rasterio.open(
            folder / f"{stem}_SCL.tif",
            "w",
            driver="GTiff",
            width=scl.shape[1],
            height=scl.shape[0],
            count=1,
            dtype="uint8",
            crs="EPSG:32648",
            transform=from_origin(*ORIGIN, 20.0, 20.0),
        ) as dst:
            dst.write(scl, 1)
    return folder
