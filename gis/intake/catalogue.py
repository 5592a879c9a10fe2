"""Make a local STAC catalogue's content from scenes on disk: per-band COGs + STAC items.

For purchased or national imagery that no public catalogue serves. Each scene (a multi-band
GeoTIFF or a band folder, as ``ioc land detect`` reads them) becomes one folder of
cloud-optimised GeoTIFFs (``B02.tif`` … ``SCL.tif``, GDAL's COG driver) under ``--out-dir`` and
one STAC item (JSON line; ``eo:cloud_cover`` from the SCL band, else from a conservative
spectral cloud test, so the intake's cloud limit can select it) whose asset hrefs are ``--base-url`` + the COG's path; load the items
with ``pypgstac load items`` into a stac-fastapi-pgstac catalogue (docs/imagery-intake.md).

    python -m gis.intake.catalogue data/land/before data/land/after_T48QXH_20250418.tif \\
        --out-dir /srv/cogs --base-url http://127.0.0.1:8090 --collection hanam-s2 \\
        --items items.ndjson --collection-file collection.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds

from gis.errors import IocError
from gis.imagery import SCL_MASKED, Scene, open_scene, read_sample

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def _scene_id(scene: Scene) -> str:
    stem = scene.path.stem if scene.path.is_file() else scene.path.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-") or "scene"


def _cloud_cover(scene: Scene) -> float | None:
    """eo:cloud_cover in percent: SCL's masked share, else the conservative spectral test of
    gis.imagery (thick bright cloud only) on a decimated read; None without B02-B04."""
    if scene.scl is None:
        if not all(b in scene.bands for b in ("B02", "B03", "B04")):
            return None
        _, valid, has_data = read_sample(scene, scene.grid, ("B02", "B03", "B04"), 1_000_000)
        n = int(has_data.sum())
        return round(float((has_data & ~valid).sum()) / n * 100, 2) if n else 100.0
    with rasterio.open(scene.scl.path) as ds:
        f = max(1, int(max(ds.width, ds.height) / 1000))
        scl = ds.read(
            scene.scl.index,
            out_shape=(ds.height // f or 1, ds.width // f or 1),
            resampling=Resampling.nearest,
        )
    return round(float(np.isin(scl, SCL_MASKED).mean()) * 100, 2)


def _to_cog(path: Path, index: int, dst: Path, band: str, blocksize: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp.tif")
    with rasterio.open(path) as ds:
        profile = {
            "driver": "GTiff",
            "width": ds.width,
            "height": ds.height,
            "count": 1,
            "dtype": ds.dtypes[index - 1],
            "crs": ds.crs,
            "transform": ds.transform,
            "nodata": ds.nodata,
        }
        data = ds.read(index)
    with rasterio.open(tmp, "w", **profile) as out:
        out.write(data, 1)
        out.set_band_description(1, band)
    try:
        rasterio.shutil.copy(
            tmp,
            dst,
            driver="COG",
            BLOCKSIZE=blocksize,
            COMPRESS="DEFLATE",
            RESAMPLING="NEAREST" if band == "SCL" else "AVERAGE",
        )
    finally:
        tmp.unlink(missing_ok=True)


def scene_item(
    path: str | Path,
    out_dir: Path,
    base_url: str,
    collection: str,
    platform: str | None = None,
    blocksize: int = 512,
) -> dict:
    """Write the scene's bands as COGs under ``out_dir/<scene id>/`` and return its STAC item.

    Raises
    ------
    InputFileError, CRSError
        Not a scene ``open_scene`` reads.
    IocError
        The scene has no acquisition date.
    """
    scene = open_scene(path)
    if scene.acquired_at is None:
        raise IocError(
            f"{scene.path}: acquisition date unknown; put it in the name "
            "(…_20250418…) or an ACQUISITION_DATE tag"
        )
    sid = _scene_id(scene)
    folder = out_dir / sid
    assets = {}
    sources = {**scene.bands, **({"SCL": scene.scl} if scene.scl else {})}
    for band, src in sorted(sources.items()):
        _to_cog(src.path, src.index, folder / f"{band}.tif", band, blocksize)
        assets[band] = {
            "href": f"{base_url.rstrip('/')}/{sid}/{band}.tif",
            "type": COG_TYPE,
            "roles": ["data"],
            "title": band,
        }
    w, s, e, n = transform_bounds(scene.grid.crs, "EPSG:4326", *scene.grid.bounds, densify_pts=21)
    props = {
        "datetime": scene.acquired_at.isoformat().replace("+00:00", "Z"),
        "proj:epsg": scene.grid.crs.to_epsg(),
    }
    cloud = _cloud_cover(scene)
    if cloud is not None:
        props["eo:cloud_cover"] = cloud
    if platform or scene.sensor:
        props["platform"] = platform or scene.sensor.lower()
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": sid,
        "collection": collection,
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
        ],
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        "bbox": [w, s, e, n],
        "properties": props,
        "assets": assets,
        "links": [],
    }


def collection_json(collection: str, items: list[dict], description: str = "") -> dict:
    boxes = np.array([i["bbox"] for i in items]) if items else np.array([[-180, -90, 180, 90]])
    times = sorted(i["properties"]["datetime"] for i in items)
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": collection,
        "description": description or f"Local imagery ({collection})",
        "license": "proprietary",
        "extent": {
            "spatial": {
                "bbox": [
                    [
                        float(boxes[:, 0].min()),
                        float(boxes[:, 1].min()),
                        float(boxes[:, 2].max()),
                        float(boxes[:, 3].max()),
                    ]
                ]
            },
            "temporal": {"interval": [[times[0] if times else None, times[-1] if times else None]]},
        },
        "links": [],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gis.intake.catalogue",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenes", nargs="+", type=Path, help="GeoTIFFs or band folders")
    p.add_argument("--out-dir", type=Path, required=True, help="where the COGs are written")
    p.add_argument("--base-url", required=True, help="URL at which --out-dir is served")
    p.add_argument("--collection", required=True, help="STAC collection id")
    p.add_argument("--items", type=Path, help="items as JSON lines (default: stdout)")
    p.add_argument("--collection-file", type=Path, help="also write the collection JSON")
    p.add_argument("--platform", help="e.g. sentinel-2a, vnredsat-1")
    p.add_argument("--blocksize", type=int, default=512)
    args = p.parse_args(argv)
    items = []
    for path in args.scenes:
        try:
            items.append(
                scene_item(
                    path,
                    args.out_dir,
                    args.base_url,
                    args.collection,
                    args.platform,
                    args.blocksize,
                )
            )
        except IocError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    lines = "".join(json.dumps(i) + "\n" for i in items)
    if args.items:
        args.items.write_text(lines)
    else:
        sys.stdout.write(lines)
    if args.collection_file:
        args.collection_file.write_text(
            json.dumps(collection_json(args.collection, items), indent=1)
        )
    print(f"{len(items)} item(s), COGs in {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
