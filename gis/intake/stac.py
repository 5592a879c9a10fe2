"""The STAC source: search a catalogue for new scenes over the area, read only the area's window.

For each new item (Sentinel-2 L2A or alike) the cloud-optimised GeoTIFF assets are read over
HTTP range requests (GDAL's ``/vsicurl/`` through rasterio): first the SCL band, to measure the
share of usable pixels over the area (a scene clouded over the area is rejected before a single
reflectance band is read), then each band's window, written as a local band folder that
``ioc land detect`` reads (``…_B02.tif … _B8A.tif, _SCL.tif``). A folder is written under a
temporary name and renamed when complete, so nothing half-written is ever used.

Errors are sorted into *transient* (HTTP 429/5xx, time-outs, refused connections: recorded as
``failed`` and retried later with back-off) and *permanent* (an asset missing, truncated or
not a raster; a scene clouded over the area: recorded as ``rejected`` with the reason).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import rasterio
import shapely
from rasterio.errors import RasterioError
from rasterio.features import geometry_mask
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window

from gis.errors import IocError
from gis.imagery import MODEL_BANDS, SCL_MASKED, normalise_band_name
from gis.intake.settings import IntakeSettings

log = logging.getLogger("gis.intake.stac")

#: Asset keys of common catalogues (Element 84's Earth Search, Planetary Computer, CDSE).
ASSET_ALIASES = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
}
_TRANSIENT = re.compile(
    r"HTTP response code: (?:429|5\d\d)|timed? ?out|Timeout|Connection refused|"
    r"Could not resolve|Couldn't connect|Connection reset|Operation too slow|SSL",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(r"HTTP response code: (?:403|404|410)|No such file", re.IGNORECASE)


class StacError(IocError, RuntimeError):
    """The catalogue could not be searched (unreachable, HTTP error, bad answer)."""

    exit_code = 1


class AssetError(Exception):
    """An item cannot be used: ``transient`` errors are retried later, others are final."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


@dataclass
class ItemOutcome:
    status: str  # processed | rejected | failed
    reason: str | None = None
    local_path: Path | None = None
    usable_share: float | None = None
    local_bytes: int | None = None
    notes: dict = field(default_factory=dict)


def gdal_http_env(settings: IntakeSettings) -> dict:
    """GDAL options for reading COGs over HTTP: no directory listing, merged ranges, retries."""
    env = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        "GDAL_HTTP_TIMEOUT": str(max(1, math.ceil(settings.stac_timeout_s))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, math.ceil(min(settings.stac_timeout_s, 10)))),
        "GDAL_HTTP_MAX_RETRY": str(settings.stac_retries),
        "GDAL_HTTP_RETRY_DELAY": str(max(settings.stac_backoff_s, 0.1)),
        "VSI_CACHE": "TRUE",
    }
    if settings.stac_headers:
        env["GDAL_HTTP_HEADERS"] = "\r\n".join(
            f"{k}: {v}" for k, v in settings.stac_headers.items()
        )
    return env


# --- searching -------------------------------------------------------------------------------


def open_client(settings: IntakeSettings):
    """A pystac-client Client with time-out and retries (429/5xx/time-outs, back-off)."""
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3.util.retry import Retry

    retry = Retry(
        total=settings.stac_retries,
        connect=settings.stac_retries,
        read=settings.stac_retries,
        status=settings.stac_retries,
        backoff_factor=settings.stac_backoff_s,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    io = StacApiIO(
        headers=dict(settings.stac_headers), timeout=settings.stac_timeout_s, max_retries=retry
    )
    try:
        # Client.open passes its own timeout/headers to stac_io.update(), resetting ours if absent
        return Client.open(
            settings.stac_url,
            stac_io=io,
            headers=dict(settings.stac_headers),
            timeout=settings.stac_timeout_s,
        )
    except Exception as exc:  # requests/pystac-client raise many types
        raise StacError(_search_failure(settings, exc)) from exc


def _search_failure(settings: IntakeSettings, exc: BaseException) -> str:
    import requests

    tries = settings.stac_retries + 1
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        what = f"no answer within {settings.stac_timeout_s:g} s"
    elif isinstance(exc, requests.ConnectionError):
        what = f"cannot connect ({_first_line(exc)})"
    elif getattr(exc, "status_code", None):
        what = f"HTTP {exc.status_code}: {_first_line(exc)}"
    else:
        what = _first_line(exc)
    return f"STAC catalogue {settings.stac_url} failed after {tries} attempt(s): {what}"


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text[:300]


def search(settings: IntakeSettings, area, now: dt.datetime, limit: int = 500) -> list[dict]:
    """Items of the collection over ``area`` (EPSG:4326) in the look-back window under the cloud
    limit, newest first (as plain dicts).

    Raises
    ------
    StacError
        The catalogue is unreachable, answers an error (after the retries) or times out.
    """
    from pystac_client.conformance import ConformanceClasses

    client = open_client(settings)
    start = now - dt.timedelta(days=settings.stac_lookback_days)
    # the cloud limit and the order are asked of catalogues that declare the extensions, and
    # applied again below for those that do not
    extra: dict = {}
    if client.conforms_to(ConformanceClasses.QUERY):
        extra["query"] = {"eo:cloud_cover": {"lte": settings.stac_max_cloud}}
    if client.conforms_to(ConformanceClasses.SORT):
        extra["sortby"] = [{"field": "properties.datetime", "direction": "desc"}]
    try:
        found = client.search(
            collections=[settings.stac_collection],
            bbox=[round(v, 7) for v in area.bounds],
            datetime=[start, now],
            limit=100,
            max_items=limit,
            **extra,
        )
        items = list(found.items_as_dicts())
    except Exception as exc:
        raise StacError(_search_failure(settings, exc)) from exc
    out = []
    for it in items:
        cloud = it.get("properties", {}).get("eo:cloud_cover")
        if cloud is not None and float(cloud) > settings.stac_max_cloud:
            continue  # a catalogue without the query extension ignores the limit
        out.append(it)
    out.sort(key=lambda i: i.get("properties", {}).get("datetime") or "", reverse=True)
    return out


def item_datetime(item: dict) -> dt.datetime | None:
    props = item.get("properties", {})
    value = props.get("datetime") or props.get("start_datetime")
    if not value:
        return None
    value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def item_footprint(item: dict):
    geom = item.get("geometry")
    if geom:
        return shapely.geometry.shape(geom)
    if item.get("bbox"):
        return shapely.box(*item["bbox"][:2], *item["bbox"][-2:])
    return None


# --- assets ----------------------------------------------------------------------------------


def _self_href(item: dict) -> str | None:
    for link in item.get("links", []):
        if link.get("rel") == "self":
            return link.get("href")
    return None


def band_assets(item: dict) -> tuple[dict[str, str], str | None]:
    """Hrefs of the item's Sentinel-2 band assets ('B02' → href) and of its SCL asset.

    Assets are recognised by key ('B02', 'b8a', 'blue', 'nir08', 'SCL'), else by the band name
    or common name they declare; JPEG 2000 copies are skipped when a GeoTIFF is there.
    """
    base = _self_href(item)
    bands: dict[str, tuple[int, str]] = {}
    scl: str | None = None
    for key, asset in (item.get("assets") or {}).items():
        href = asset.get("href")
        if not href:
            continue
        if base and "://" not in href and not href.startswith("/"):
            href = urljoin(base, href)
        media = (asset.get("type") or "").lower()
        rank = 0 if "tiff" in media else 1 if not media else 2
        k = key.strip()
        if k.lower().endswith("-jp2"):
            rank = 2
            k = k[:-4]
        if k.lower() in ("scl", "scl_20m"):
            scl = scl if scl and rank > 0 else href
            continue
        name = normalise_band_name(k) or ASSET_ALIASES.get(k.lower())
        if name is None:
            declared = asset.get("eo:bands") or asset.get("bands") or [{}]
            if len(declared) == 1:
                d = declared[0]
                name = normalise_band_name(str(d.get("name", ""))) or ASSET_ALIASES.get(
                    str(d.get("common_name", "")).lower()
                )
        if name and (name not in bands or rank < bands[name][0]):
            bands[name] = (rank, href)
    return {b: h for b, (_, h) in bands.items()}, scl


def _gdal_path(href: str) -> str:
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("file://"):
        return href[len("file://") :]
    return href


def _asset_error(band: str, href: str, exc: BaseException) -> AssetError:
    msg = _first_line(exc)
    if _TRANSIENT.search(msg):
        return AssetError(f"asset {band} ({href}) could not be fetched: {msg}", transient=True)
    if _NOT_FOUND.search(msg):
        return AssetError(f"asset {band} ({href}) is missing on the server: {msg}")
    return AssetError(
        f"asset {band} ({href}) is not a readable raster (truncated or corrupt: {msg})"
    )


def _window(ds, area_bounds_4326: tuple[float, float, float, float]) -> Window:
    """The window of the area's bounds on the dataset's grid, clipped to the dataset (width or
    height 0 when they do not meet)."""
    w, s, e, n = transform_bounds("EPSG:4326", ds.crs, *area_bounds_4326, densify_pts=21)
    inv = ~ds.transform
    cols, rows = zip(*(inv * (x, y) for x, y in ((w, n), (e, n), (e, s), (w, s))), strict=True)
    c0, c1 = max(math.floor(min(cols)), 0), min(math.ceil(max(cols)), ds.width)
    r0, r1 = max(math.floor(min(rows)), 0), min(math.ceil(max(rows)), ds.height)
    return Window(c0, r0, max(c1 - c0, 0), max(r1 - r0, 0))


def usable_share(ds, area) -> tuple[float, Window]:
    """Share of the area's pixels inside the image that SCL marks usable (not no data, cloud,
    shadow, cirrus, saturated), and the image window of the area's bounds.

    Parts of the area outside the image (another tile's) do not count; no-data pixels inside
    it (a swath edge) count as not usable.
    """
    inside = _window(ds, area.bounds)
    if inside.width == 0 or inside.height == 0:
        return 0.0, inside
    block = ds.read(1, window=inside)
    shape = transform_geom("EPSG:4326", ds.crs, shapely.geometry.mapping(area))
    in_area = geometry_mask(
        [shape],
        out_shape=block.shape,
        transform=ds.window_transform(inside),
        invert=True,
        all_touched=False,
    )
    total = int(in_area.sum())
    if total == 0:  # the area touches the image by less than a pixel centre
        return 0.0, Window(0, 0, 0, 0)
    good = in_area & ~np.isin(block, SCL_MASKED)
    return float(good.sum()) / total, inside


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-")[:120] or "item"


def _platform_code(item: dict) -> str:
    platform = str(item.get("properties", {}).get("platform", "")).lower()
    m = re.fullmatch(r"sentinel-?2([abcd])", platform)
    return f"S2{m.group(1).upper()}" if m else "S2"


def _read_window(ds, window: Window) -> tuple[np.ndarray, dict]:
    """The window's pixels of the open (remote) dataset and the profile to write them with."""
    data = ds.read(1, window=window)
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype,
        "crs": ds.crs,
        "transform": ds.window_transform(window),
        "nodata": ds.nodata,
        "compress": "deflate",
    }
    if data.shape[0] >= 256 and data.shape[1] >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return data, profile


def _write_local(data: np.ndarray, profile: dict, dst: Path, band: str, tags: dict) -> int:
    """Write a band GeoTIFF locally; returns its size. A failure here (disk full, no
    permission) is the intake's, not the item's: a transient AssetError (retried later)."""
    try:
        with rasterio.open(dst, "w", **profile) as out:
            out.write(data, 1)
            out.set_band_description(1, band)
            out.update_tags(**tags)
        return dst.stat().st_size
    except (RasterioError, OSError) as exc:
        raise AssetError(f"cannot write {dst}: {_first_line(exc)}", transient=True) from exc


def _write_window(ds, window: Window, dst: Path, band: str, tags: dict) -> int:
    """Read ``window`` of the open dataset and write it as a GeoTIFF; returns its size."""
    data, profile = _read_window(ds, window)
    return _write_local(data, profile, dst, band, tags)


def read_item(item: dict, area, out_root: Path, settings: IntakeSettings) -> ItemOutcome:
    """Read the area's window of one item into ``out_root/<collection>/<item>/`` (band folder).

    Returns an outcome; never raises for a bad item (the reason is in the outcome).
    """
    item_id = str(item.get("id"))
    when = item_datetime(item)
    bands, scl_href = band_assets(item)
    missing = [b for b in MODEL_BANDS if b not in bands]
    if missing:
        return ItemOutcome(
            "rejected",
            f"item {item_id} has no asset for band(s) "
            f"{', '.join(missing)} (assets: {', '.join(sorted(item.get('assets') or {})) or 'none'})",
        )
    if when is None:
        return ItemOutcome("rejected", f"item {item_id} has no datetime")
    collection = str(item.get("collection") or settings.stac_collection)
    final = out_root / _safe(collection) / _safe(item_id)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    stem = f"{_platform_code(item)}_{when:%Y%m%dT%H%M%S}_{_safe(item_id)}"
    tags = {
        "ACQUISITION_DATE": when.isoformat(),
        "STAC_ITEM": item_id,
        "STAC_COLLECTION": collection,
        "SENSOR": "Sentinel-2",
    }
    share: float | None = None
    notes: dict = {}
    try:
        with rasterio.Env(**gdal_http_env(settings)):
            if scl_href:
                try:
                    with rasterio.open(_gdal_path(scl_href)) as ds:
                        share, inside = usable_share(ds, area)
                except (RasterioError, OSError) as exc:
                    raise _asset_error("SCL", scl_href, exc) from exc
                if inside.width == 0 or inside.height == 0:
                    return ItemOutcome(
                        "rejected", f"item {item_id} does not cover the area", usable_share=0.0
                    )
                if share < settings.min_usable_share:
                    return ItemOutcome(
                        "rejected",
                        f"item {item_id}: only {share:.0%} of the area is usable (cloud, "
                        f"shadow or no data in its SCL band); at least "
                        f"{settings.min_usable_share:.0%} is needed",
                        usable_share=round(share, 4),
                    )
            else:
                notes["scl"] = "no SCL asset: clouds judged by eo:cloud_cover only"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            written = 0
            todo = [(b, bands[b]) for b in MODEL_BANDS] + ([("SCL", scl_href)] if scl_href else [])
            for band, href in todo:
                try:
                    with rasterio.open(_gdal_path(href)) as ds:
                        inside = _window(ds, area.bounds)
                        if inside.width == 0 or inside.height == 0:
                            return ItemOutcome(
                                "rejected", f"item {item_id}: asset {band} does not cover the area"
                            )
                        data, profile = _read_window(ds, inside)
                except (RasterioError, OSError) as exc:
                    raise _asset_error(band, href, exc) from exc
                written += _write_local(data, profile, tmp / f"{stem}_{band}.tif", band, tags)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return ItemOutcome(
            "processed",
            local_path=final,
            usable_share=round(share, 4) if share is not None else None,
            local_bytes=written,
            notes=notes,
        )
    except AssetError as exc:
        status = "failed" if exc.transient else "rejected"
        return ItemOutcome(status, f"item {item_id}: {exc}", usable_share=share)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
