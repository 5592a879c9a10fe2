"""Test scenes for the intake: COGs made at test time (GDAL's COG driver) and STAC items.

From the shared OSCD images (``../shared/data/oscd/<city>/imgs_1|imgs_2``, read in place, never
copied into the repository) and from the shipped demo pair in ``data/land``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.warp import transform_bounds

from gis.imagery import MODEL_BANDS, open_scene

REPO = Path(__file__).resolve().parents[3]
LAND = REPO / "data" / "land"

#: Earth Search asset keys (the intake also accepts B02-style keys)
EARTH_SEARCH_KEYS = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B11": "swir16",
    "B12": "swir22",
}
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def to_cog(src: Path, dst: Path, blocksize: int = 128) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    rasterio.shutil.copy(src, dst, driver="COG", BLOCKSIZE=blocksize, COMPRESS="DEFLATE")
    return dst


def write_cog(
    dst: Path, data: np.ndarray, crs, transform, nodata=None, blocksize: int = 128
) -> Path:
    tmp = dst.with_suffix(".src.tif")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        tmp,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as out:
        out.write(data, 1)
    to_cog(tmp, dst, blocksize)
    tmp.unlink()
    return dst


def scl_like(band20: Path, dst: Path, cloud_share: float = 0.0, value: int = 9) -> Path:
    """An SCL COG on the grid of a 20 m band: 4 (vegetation) everywhere, ``value`` (9 = cloud
    high probability) over the top ``cloud_share`` of the rows."""
    with rasterio.open(band20) as ds:
        scl = np.full((ds.height, ds.width), 4, dtype=np.uint8)
        scl[: int(round(cloud_share * ds.height)), :] = value
        return write_cog(dst, scl, ds.crs, ds.transform)


def oscd_cogs(city_dir: Path, which: str, out: Path, cloud_share: float = 0.0) -> dict[str, Path]:
    """Per-band COGs of OSCD ``imgs_1``/``imgs_2`` + a synthetic SCL: band → path."""
    files = {}
    for band in MODEL_BANDS:
        src = next((city_dir / which).glob(f"*_{band}.tif"))
        files[band] = to_cog(src, out / f"{band}.tif")
    files["SCL"] = scl_like(files["B05"], out / "SCL.tif", cloud_share)
    return files


def demo_cogs(which: str, out: Path, cloud_share: float = 0.0) -> dict[str, Path]:
    """Per-band COGs of the shipped demo pair (``before`` band folder or ``after`` multiband)."""
    files = {}
    if which == "before":
        for band in MODEL_BANDS:
            files[band] = to_cog(next((LAND / "before").glob(f"*_{band}.tif")), out / f"{band}.tif")
    else:
        path = next(LAND.glob("after_*.tif"))
        scene = open_scene(path)
        with rasterio.open(path) as ds:
            for band in MODEL_BANDS:
                files[band] = write_cog(
                    out / f"{band}.tif",
                    ds.read(scene.bands[band].index),
                    ds.crs,
                    ds.transform,
                    ds.nodata,
                )
    b10 = files["B02"]
    with rasterio.open(b10) as ds:  # SCL at 20 m over the same extent
        from rasterio.transform import from_origin

        h, w = -(-ds.height // 2), -(-ds.width // 2)
        scl = np.full((h, w), 4, dtype=np.uint8)
        scl[: int(round(cloud_share * h)), :] = 9
        files["SCL"] = write_cog(
            out / "SCL.tif", scl, ds.crs, from_origin(ds.transform.c, ds.transform.f, 20.0, 20.0)
        )
    return files


def footprint_lonlat(path: Path) -> list[float]:
    with rasterio.open(path) as ds:
        return list(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds))


def collection(cid: str) -> dict:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": cid,
        "description": f"intake test collection {cid}",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [[None, None]]},
        },
        "links": [],
    }


def item(
    cid: str,
    iid: str,
    when: dt.datetime,
    files: dict[str, Path],
    root: Path,
    base_url: str,
    cloud: float,
    keys: dict[str, str] | None = None,
    platform: str = "sentinel-2a",
    href_override: dict[str, str] | None = None,
) -> dict:
    """A STAC item whose assets are the COGs in ``files`` served at ``base_url``."""
    w, s, e, n = footprint_lonlat(files["B02"])
    assets = {}
    for band, path in files.items():
        key = "scl" if band == "SCL" else (keys or {}).get(band, band)
        href = f"{base_url}/{path.relative_to(root).as_posix()}"
        assets[key] = {
            "href": (href_override or {}).get(band, href),
            "type": COG_TYPE,
            "roles": ["data"],
        }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": iid,
        "collection": cid,
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": [w, s, e, n],
        "properties": {
            "datetime": when.isoformat().replace("+00:00", "Z"),
            "eo:cloud_cover": cloud,
            "platform": platform,
        },
        "assets": assets,
        "links": [],
    }
