"""Imagery as layers and evidence per alert (issue 14).

For every scene a stored detection run read, a **cloud-optimised GeoTIFF** is kept under the
state folder (``<state>/imagery/cog/<scene fingerprint>.tif``: the four 10 m bands B02, B03,
B04, B08 on the scene's own grid and CRS, deflate-compressed 512-px internal tiles, averaged
overviews; written by rio-cogeo to a temporary name, validated, then renamed) with a per-band
**stretch** (2nd and 98th percentile of the valid pixels, measured on an overview) recorded in
``scene_cogs``. Map tiles (:func:`render_tile`, rio-tiler) and chips use that stretch, so the
same scene looks the same everywhere.

For every parcel alert of the run, **image chips** (:func:`make_alert_chips`): before and
after, true colour (B04/B03/B02) and NIR false colour (B08/B04/B03), a square around the
parcel with a margin, the parcel outline drawn in yellow and the run's change polygons in
cyan (geometries transformed from the storage CRS into each scene's CRS with the pinned
VN-2000 transformation), PNG files under ``<state>/evidence/run-<id>/`` recorded in
``alert_evidence``.

:func:`store_run_evidence` is what :func:`gis.change.store.store_run` calls inside the run's
transaction. Files are written under new names and only take the place of older ones when the
transaction commits; if it rolls back, the files it wrote are deleted (nothing partial stays).
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import shapely
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from sqlalchemy import Connection, event, text

from gis.crs import transform_geometries
from gis.errors import InputFileError, RecordNotFoundError
from gis.imagery import Scene

#: Bands kept in a scene's COG, in this order.
COG_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
#: Styles: the COG bands shown as red, green, blue.
STYLES: dict[str, tuple[str, str, str]] = {
    "truecolor": ("B04", "B03", "B02"),
    "falsecolor": ("B08", "B04", "B03"),  # NIR false colour: vegetation red, built-up cyan-grey
}
MOMENTS = ("before", "after")
STRETCH_PERCENTILES = (2.0, 98.0)
#: Display gamma applied after the linear 2-98 % stretch: reflectance is shown as
#: ``((v - lo) / (hi - lo)) ** (1 / DISPLAY_GAMMA)``. Sentinel-2 scenes of the delta are mostly
#: dark vegetation and water (red 0.02-0.06 reflectance) under a few bright roofs that set the
#: 98th percentile; linearly, a paddy chip was nearly black (median luminance 21 of 255 on the
#: sample pair), with 2.0 it reads like the scene (median 73-95), the bright roofs unclipped.
DISPLAY_GAMMA = 2.0
CHIP_SIZE = 384  # px
CHIP_MARGIN = 0.5  # of the parcel's larger side, each way
CHIP_MIN_EXTENT_M = 300.0  # a small parcel still shows its surroundings
PARCEL_COLOUR = (255, 255, 0)  # yellow
CHANGE_COLOUR = (0, 255, 255)  # cyan
PARCEL_LINE_PX = 3
CHANGE_LINE_PX = 2

_GDAL_TYPES = {
    "uint8": "Byte",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


class EvidenceError(InputFileError):
    """Imagery evidence cannot be made (scene not covering a parcel, COG not valid...)."""


def imagery_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "imagery" / "cog"


def evidence_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "evidence"


def default_state_dir() -> Path:
    from gis.settings import StateSettings

    return StateSettings().state_dir


# -- files that only count once the transaction commits ---------------------------------------
class _FileLedger:
    """Files written in a transaction: deleted if it rolls back; ``replaced`` files are
    deleted once it commits."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.written: list[Path] = []
        self.replaced: list[Path] = []
        self.done = False
        self._later: set[str] = set()  # savepoints opened after this ledger: theirs, not ours
        self._events = (
            ("commit", self._commit),
            ("rollback", self._rollback),
            ("savepoint", self._savepoint),
            ("rollback_savepoint", self._rollback_savepoint),
        )
        for name, fn in self._events:
            event.listen(conn, name, fn)

    def _detach(self) -> None:
        # listeners live on this Connection object only; they cannot be removed while the
        # event is being dispatched, so they are switched off instead
        self.done = True

    @staticmethod
    def _unlink(paths: list[Path]) -> None:
        for p in paths:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def _commit(self, conn) -> None:
        if self.done:
            return
        self._detach()
        self._unlink([p for p in self.replaced if p not in self.written])

    def _rollback(self, conn) -> None:
        if self.done:
            return
        self._detach()
        self._unlink(self.written)

    def _savepoint(self, conn, name) -> None:
        if self.done:
            return
        self._later.add(name)

    def _rollback_savepoint(self, conn, name, context) -> None:
        if self.done:
            return
        if name not in self._later:  # the savepoint our work is in (or an enclosing one)
            self._rollback(conn)


def _publish(tmp: Path, final: Path, ledger: _FileLedger | None) -> Path:
    os.replace(tmp, final)
    if ledger is not None:
        ledger.written.append(final)
    return final


# -- COGs -------------------------------------------------------------------------------------
@dataclass
class CogInfo:
    path: Path
    crs: str
    width: int
    height: int
    bands: list[str]
    stretch: dict[str, list[float]]
    created: bool = False


def _vrt_xml(scene: Scene) -> str:
    """A GDAL VRT stacking the scene's COG bands on its grid (bands may be separate files)."""
    scene.require(COG_BANDS)
    grid = scene.grid
    t = grid.transform
    nodata = 0 if scene.nodata is None else scene.nodata
    dtype = _GDAL_TYPES.get(str(scene.dtype))
    if dtype is None:
        raise EvidenceError(f"{scene.path}: cannot keep bands of type {scene.dtype} as a COG.")
    parts = [
        f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">',
        f"<SRS>{escape(grid.crs.to_wkt())}</SRS>",
        f"<GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>",
    ]
    for i, name in enumerate(COG_BANDS, start=1):
        src = scene.bands[name]
        try:
            with rasterio.open(src.path) as ds:
                if ds.crs != grid.crs:
                    raise EvidenceError(f"{src.path}: band {name} is not in the scene's CRS.")
                st = ds.transform
                # where the band's pixels land on the scene grid (10 m bands: the same grid)
                x_off = (st.c - t.c) / t.a
                y_off = (st.f - t.f) / t.e
                x_size = ds.width * st.a / t.a
                y_size = ds.height * st.e / t.e
                width, height = ds.width, ds.height
        except rasterio.errors.RasterioIOError as exc:
            raise EvidenceError(f"{src.path}: not a readable raster ({exc}).") from exc
        parts.append(
            f'<VRTRasterBand dataType="{dtype}" band="{i}"><NoDataValue>{nodata}</NoDataValue>'
            f"<Description>{name}</Description><SimpleSource>"
            f'<SourceFilename relativeToVRT="0">{escape(str(Path(src.path).resolve()))}'
            f"</SourceFilename><SourceBand>{src.index}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
            f'<DstRect xOff="{x_off!r}" yOff="{y_off!r}" xSize="{x_size!r}" ySize="{y_size!r}"/>'
            "</SimpleSource></VRTRasterBand>"
        )
    parts.append("</VRTDataset>")
    return "".join(parts)


def validate_cog(path: Path) -> None:
    """EvidenceError naming the file unless it is a valid cloud-optimised GeoTIFF (tiled,
    with its overviews after the main image)."""
    try:
        valid, errors, _warnings = cog_validate(str(path), quiet=True)
    except Exception as exc:  # noqa: BLE001 - rasterio/GDAL errors of a damaged file
        raise EvidenceError(
            f"{path}: not a readable GeoTIFF ({str(exc).splitlines()[0]})."
        ) from exc
    if not valid:
        raise EvidenceError(f"{path}: not a cloud-optimised GeoTIFF ({'; '.join(errors)}).")


def scene_stretch(
    path: Path, bands: tuple[str, ...] = COG_BANDS, max_side: int = 1024
) -> dict[str, list[float]]:
    """Per band, the 2nd and 98th percentile of the pixels valid in every band, read from an
    overview of at most ``max_side`` pixels (cheap on a full tile)."""
    with rasterio.open(path) as ds:
        f = max(1.0, max(ds.width, ds.height) / max_side)
        shape = (ds.count, max(1, int(ds.height / f)), max(1, int(ds.width / f)))
        data = ds.read(out_shape=shape, masked=True)
    valid = ~np.ma.getmaskarray(data).any(axis=0) & np.all(data.filled(0) != 0, axis=0)
    if not valid.any():
        raise EvidenceError(f"{path}: the image has no valid pixels to stretch.")
    out = {}
    for i, name in enumerate(bands):
        lo, hi = np.percentile(np.asarray(data[i])[valid].astype(np.float64), STRETCH_PERCENTILES)
        if hi <= lo:
            hi = lo + 1.0
        out[name] = [round(float(lo), 4), round(float(hi), 4)]
    return out


def write_scene_cog(
    scene: Scene, fingerprint: str, state_dir: Path, ledger: _FileLedger | None = None
) -> CogInfo:
    """The scene's COG (``<state>/imagery/cog/<fingerprint>.tif``): reused when a valid one is
    there (same content), else written to a temporary name, validated and renamed."""
    out_dir = imagery_dir(state_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{fingerprint}.tif"
    created = False
    if final.exists():
        try:
            validate_cog(final)
        except EvidenceError:
            final.unlink()
    if not final.exists():
        vrt = out_dir / f".{fingerprint}.{uuid.uuid4().hex[:8]}.vrt"
        tmp = out_dir / f".{fingerprint}.{uuid.uuid4().hex[:8]}.tif"
        try:
            vrt.write_text(_vrt_xml(scene), encoding="utf-8")
            # deflate level 1 + horizontal predictor: the size of level 6 on Sentinel-2-like
            # bands for ~0.6 of the CPU (measured on a 2048² scene: 0.98 vs 1.4-1.8 CPU-s);
            # rio-cogeo's own writer (GTiff, then copied with the COG layout) used less CPU
            # than GDAL's COG driver here. Deflate, not ZSTD: every GDAL/QGIS reads it.
            profile = dict(cog_profiles.get("deflate"), zlevel=1)
            if str(scene.dtype).startswith(("uint", "int")):
                profile["predictor"] = 2
            with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=128 * 1024 * 1024):
                # overviews down to ~256 px (at least one level, even on a small scene)
                levels = max(
                    1, math.ceil(math.log2(max(scene.grid.width, scene.grid.height) / 256))
                )
                cog_translate(
                    str(vrt),
                    str(tmp),
                    profile,
                    overview_level=levels,
                    overview_resampling="average",
                    in_memory=False,
                    quiet=True,
                    use_cog_driver=False,
                    forward_band_tags=True,
                )
            validate_cog(tmp)  # band descriptions (B02...) come from the VRT
            _publish(tmp, final, ledger)
            created = True
        except rasterio.errors.RasterioError as exc:
            raise EvidenceError(
                f"{scene.path}: cannot write its COG ({str(exc).splitlines()[0]})."
            ) from exc
        finally:
            vrt.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)
    with rasterio.open(final) as ds:
        crs, width, height = ds.crs.to_string(), ds.width, ds.height
    return CogInfo(final, crs, width, height, list(COG_BANDS), scene_stretch(final), created)


# -- rendering --------------------------------------------------------------------------------
def _style_indexes(style: str, bands: list[str]) -> list[int]:
    if style not in STYLES:
        raise EvidenceError(f"unknown style '{style}'; use {' or '.join(STYLES)}.")
    return [bands.index(b) + 1 for b in STYLES[style]]


def to_display(
    values: np.ndarray, lo: float, hi: float, gamma: float = DISPLAY_GAMMA
) -> np.ndarray:
    """uint8 display values of one band: linear from ``lo`` (0) to ``hi`` (255), clipped, then
    the display gamma (the one transfer tiles and chips share).

    >>> to_display(np.array([0, 100, 325, 550, 1000]), 100, 1000).tolist()
    [0, 0, 128, 180, 255]
    """
    x = (np.asarray(values, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo)
    x = np.clip(x, 0.0, 1.0)
    if gamma != 1.0:
        x = np.power(x, np.float32(1.0 / gamma))
    return np.rint(x * 255.0).astype(np.uint8)


def pair_stretch(*stretches: dict[str, list[float]]) -> dict[str, list[float]]:
    """One stretch for scenes shown side by side (a run's before and after): per band the
    lowest 2nd and the highest 98th percentile of the scenes, so the same reflectance has the
    same colour on both dates and neither date is clipped more than by its own stretch.

    >>> pair_stretch({"B04": [400, 1400]}, {"B04": [380, 1600]})
    {'B04': [380, 1600]}
    """
    bands = set(stretches[0]).intersection(*stretches[1:])
    return {
        b: [min(s[b][0] for s in stretches), max(s[b][1] for s in stretches)]
        for b in stretches[0]
        if b in bands
    }


def render_tile(
    cog_path: str | Path,
    bands: list[str],
    stretch: dict[str, list[float]],
    z: int,
    x: int,
    y: int,
    style: str = "truecolor",
    tilesize: int = 256,
    gamma: float = DISPLAY_GAMMA,
) -> bytes | None:
    """A WebMercatorQuad PNG tile (RGBA, transparent outside the scene) of a scene COG, or
    None when the tile does not touch the scene; ``stretch`` and ``gamma`` as for the chips
    (:func:`to_display`).

    Only the part of the tile the scene covers is read, at the tile's own pixel size (from the
    COG's overviews), and placed on a transparent tile: asking rio-tiler for a whole low-zoom
    tile of a small scene warps the tile's full extent at the scene's resolution (a z9 tile of
    a 1 km scene took 4 s and 1.3 GB, a z5 tile never finished).
    """
    from rasterio.warp import transform_bounds
    from rio_tiler.models import ImageData

    indexes = _style_indexes(style, bands)
    with Reader(str(cog_path)) as src:
        if not src.tile_exists(x, y, z):
            return None
        tms = src.tms
        tb = tms.xy_bounds(x, y, z)
        sb = transform_bounds(src.crs, tms.rasterio_crs, *src.bounds, densify_pts=21)
        ix0, iy0 = max(tb.left, sb[0]), max(tb.bottom, sb[1])
        ix1, iy1 = min(tb.right, sb[2]), min(tb.top, sb[3])
        if ix0 >= ix1 or iy0 >= iy1:
            return None
        res = (tb.right - tb.left) / tilesize
        col0 = min(tilesize - 1, max(0, int(round((ix0 - tb.left) / res))))
        row0 = min(tilesize - 1, max(0, int(round((tb.top - iy1) / res))))
        width = max(1, min(tilesize - col0, int(round((ix1 - ix0) / res))))
        height = max(1, min(tilesize - row0, int(round((iy1 - iy0) / res))))
        # only the scene's part of the tile, resampled to the tile pixels it covers (the
        # part's edges are the scene's, so nothing outside it is warped)
        part_bounds = (ix0, iy0, ix1, iy1)
        try:
            part = src.part(
                part_bounds,
                dst_crs=tms.rasterio_crs,
                bounds_crs=tms.rasterio_crs,
                width=width,
                height=height,
                indexes=indexes,
                resampling_method="bilinear",
                reproject_method="bilinear",
            )
        except TileOutsideBounds:
            return None
    canvas = np.ma.masked_all((len(indexes), tilesize, tilesize), dtype=part.array.dtype)
    canvas[:, row0 : row0 + height, col0 : col0 + width] = part.array
    display = np.ma.MaskedArray(
        np.stack(
            [
                to_display(canvas[k].filled(stretch[name][0]), *stretch[name], gamma)
                for k, name in enumerate(STYLES[style])
            ]
        ),
        mask=np.ma.getmaskarray(canvas),
    )
    img = ImageData(display, bounds=tb, crs=tms.rasterio_crs, band_names=part.band_names)
    return img.render(img_format="PNG")


def stretch_rgba(
    data: np.ma.MaskedArray,
    bands: list[str],
    style: str,
    stretch: dict[str, list[float]],
    gamma: float = DISPLAY_GAMMA,
) -> np.ndarray:
    """(h, w, 4) uint8 of a style's three bands, each stretched from its 2-98 % range to
    0-255 with the display gamma (:func:`to_display`); transparent where any band has no
    data."""
    idx = [i - 1 for i in _style_indexes(style, bands)]
    mask = np.ma.getmaskarray(data)[idx].any(axis=0)
    rgb = np.empty(data.shape[1:] + (3,), dtype=np.uint8)
    for k, (i, name) in enumerate(zip(idx, STYLES[style], strict=True)):
        lo, hi = stretch[name]
        rgb[..., k] = to_display(data[i].filled(lo), lo, hi, gamma)
    mask |= np.all(np.asarray(data.filled(0))[idx] == 0, axis=0)
    alpha = np.where(mask, 0, 255).astype(np.uint8)
    return np.dstack([rgb, alpha])


def _pixel_rings(geom, bounds, size: int) -> list[list[tuple[float, float]]]:
    minx, miny, maxx, maxy = bounds
    sx, sy = size / (maxx - minx), size / (maxy - miny)
    rings = []
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon":
            continue
        for ring in (poly.exterior, *poly.interiors):
            rings.append([((x - minx) * sx, (maxy - y) * sy) for x, y in ring.coords])
    return rings


def draw_outlines(rgba: np.ndarray, bounds, parcel, changes) -> bytes:
    """PNG of ``rgba`` (h, w, 4) with the change polygons (cyan) and the parcel (yellow)."""
    import io

    from PIL import Image, ImageDraw

    img = Image.fromarray(rgba, "RGBA")
    draw = ImageDraw.Draw(img)
    size = img.width
    for g in changes:
        for ring in _pixel_rings(g, bounds, size):
            draw.line(ring, fill=CHANGE_COLOUR + (255,), width=CHANGE_LINE_PX, joint="curve")
    for ring in _pixel_rings(parcel, bounds, size):
        draw.line(ring, fill=PARCEL_COLOUR + (255,), width=PARCEL_LINE_PX, joint="curve")
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)  # 4 chips per alert: fast over small
    return buf.getvalue()


def chip_bounds(parcel, size_min: float = CHIP_MIN_EXTENT_M) -> tuple[float, float, float, float]:
    """A square around the parcel (scene CRS units) with a margin."""
    minx, miny, maxx, maxy = parcel.bounds
    side = max(maxx - minx, maxy - miny) * (1 + 2 * CHIP_MARGIN)
    side = max(side, size_min)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def render_chips(
    src, bands: list[str], stretch: dict[str, list[float]], parcel, changes, size: int = CHIP_SIZE
) -> list[tuple[str, bytes, tuple]]:
    """(style, PNG, bounds) of each style around ``parcel`` (scene CRS), read from an open
    rio-tiler Reader of a scene COG, with the outlines drawn."""
    from PIL import Image
    from rasterio.enums import Resampling
    from rasterio.windows import Window, from_bounds

    bounds = chip_bounds(parcel)
    ds = src.dataset
    # the chip's square at the scene's own resolution (pixels as they are), stretched there,
    # then enlarged to ``size`` (nearest): cheaper than resampling all bands to ``size`` first
    win = from_bounds(*bounds, transform=ds.transform)
    shape = (len(bands), max(1, round(win.height)), max(1, round(win.width)))
    inside = Window(0, 0, ds.width, ds.height)
    boundless = not (
        win.col_off >= 0
        and win.row_off >= 0
        and win.col_off + win.width <= inside.width
        and win.row_off + win.height <= inside.height
    )
    data = ds.read(
        list(range(1, len(bands) + 1)),
        window=win,
        out_shape=shape,
        resampling=Resampling.nearest,
        boundless=boundless,
        masked=True,
    )
    out = []
    for style in STYLES:
        small = Image.fromarray(stretch_rgba(data, bands, style, stretch), "RGBA")
        rgba = np.asarray(small.resize((size, size), Image.Resampling.NEAREST))
        out.append((style, draw_outlines(rgba, bounds, parcel, changes), bounds))
    return out


# -- alert chips ------------------------------------------------------------------------------
ALERT_SQL = text("""
    SELECT a.id, a.run_id, ST_AsBinary(p.geom) AS parcel, r.before_scene_id, r.after_scene_id,
           Find_SRID('public', 'parcels', 'geom') AS srid
    FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id
    JOIN detection_runs r ON r.id = a.run_id
    WHERE a.id = :id
""")

CHANGES_SQL = text("""
    SELECT ST_AsBinary(c.geom) FROM land_changes c
    WHERE c.run_id = :run AND c.geom && ST_Expand(ST_GeomFromWKB(:parcel, ST_SRID(c.geom)), :pad)
""")

COG_SQL = text("""
    SELECT c.scene_id, c.path, c.crs, c.bands, c.stretch, s.path AS scene_path
    FROM scene_cogs c JOIN imagery_scenes s ON s.id = c.scene_id WHERE c.scene_id = :id
""")

UPSERT_EVIDENCE = text("""
    INSERT INTO alert_evidence (alert_id, moment, style, scene_id, path, width, height, crs, bounds)
    VALUES (:alert_id, :moment, :style, :scene_id, :path, :width, :height, :crs, CAST(:bounds AS jsonb))
    ON CONFLICT (alert_id, moment, style) DO UPDATE SET scene_id = EXCLUDED.scene_id,
        path = EXCLUDED.path, width = EXCLUDED.width, height = EXCLUDED.height,
        crs = EXCLUDED.crs, bounds = EXCLUDED.bounds, created_at = now()
    RETURNING (SELECT path FROM alert_evidence WHERE alert_id = :alert_id AND moment = :moment
               AND style = :style)
""")


def make_alert_chips(
    conn: Connection,
    alert_id: int,
    state_dir: Path | None = None,
    size: int = CHIP_SIZE,
    ledger: _FileLedger | None = None,
) -> list[Path]:
    """Make and record the four chips of a parcel alert (before/after × truecolor/falsecolor).

    Raises
    ------
    RecordNotFoundError
        No such alert.
    EvidenceError
        The alert's run has no stored imagery, or a scene does not cover the parcel (the
        message names the alert and the scene file); nothing is written for the alert then.
    """
    import json

    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    own_ledger = ledger is None
    if own_ledger:
        ledger = _FileLedger(conn)
    row = conn.execute(ALERT_SQL, {"id": alert_id}).one_or_none()
    if row is None:
        raise RecordNotFoundError(f"No parcel alert {alert_id}.")
    parcel_storage = shapely.from_wkb(bytes(row.parcel))
    scenes = {}
    for moment, scene_id in (("before", row.before_scene_id), ("after", row.after_scene_id)):
        cog = conn.execute(COG_SQL, {"id": scene_id}).one_or_none() if scene_id else None
        if cog is None:
            raise EvidenceError(
                f"Alert {alert_id}: its run {row.run_id} has no stored {moment} imagery."
            )
        scenes[moment] = cog
    # one stretch for both dates: the same reflectance has the same colour before and after
    shared = pair_stretch(scenes["before"].stretch, scenes["after"].stretch)
    renders: list[tuple[str, str, object, bytes, tuple]] = []
    for moment, cog in scenes.items():
        parcel = transform_geometries(
            np.array([parcel_storage], dtype=object), int(row.srid), cog.crs
        )[0]
        bounds = chip_bounds(parcel)
        pad = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
        changes_storage = [
            shapely.from_wkb(bytes(r[0]))
            for r in conn.execute(
                CHANGES_SQL, {"run": row.run_id, "parcel": row.parcel, "pad": pad}
            )
        ]
        changes = (
            list(
                transform_geometries(
                    np.array(changes_storage, dtype=object), int(row.srid), cog.crs
                )
            )
            if changes_storage
            else []
        )
        with Reader(cog.path) as src:
            if not shapely.box(*src.bounds).intersects(parcel):
                raise EvidenceError(
                    f"Alert {alert_id}: scene {Path(cog.scene_path).name} (id {cog.scene_id}) "
                    "does not cover its parcel."
                )
            for style, png, b in render_chips(src, list(cog.bands), shared, parcel, changes, size):
                renders.append((moment, style, cog, png, b))
    out_dir = evidence_dir(state_dir) / f"run-{row.run_id}"
    out_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    written = []
    for moment, style, cog, png, bounds in renders:
        final = out_dir / f"alert-{alert_id}-{moment}-{style}-{token}.png"
        tmp = final.with_name("." + final.name)
        tmp.write_bytes(png)
        _publish(tmp, final, ledger)
        written.append(final)
        old = conn.execute(
            UPSERT_EVIDENCE,
            {
                "alert_id": alert_id,
                "moment": moment,
                "style": style,
                "scene_id": cog.scene_id,
                "path": str(final),
                "width": size,
                "height": size,
                "crs": cog.crs,
                "bounds": json.dumps([round(v, 3) for v in bounds]),
            },
        ).scalar()
        if old and old != str(final):
            ledger.replaced.append(Path(old))
    return written


# -- the hook of store_run --------------------------------------------------------------------
UPSERT_COG = text("""
    INSERT INTO scene_cogs (scene_id, fingerprint, path, crs, width, height, bands, stretch)
    VALUES (:scene_id, :fingerprint, :path, :crs, :width, :height, CAST(:bands AS jsonb),
            CAST(:stretch AS jsonb))
    ON CONFLICT (scene_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
        path = EXCLUDED.path, crs = EXCLUDED.crs, width = EXCLUDED.width,
        height = EXCLUDED.height, bands = EXCLUDED.bands, stretch = EXCLUDED.stretch,
        created_at = now()
""")


def store_run_evidence(
    conn: Connection, run_id: int, result, state_dir: Path | None = None
) -> dict:
    """Inside the run's transaction: the COGs of its two scenes and the chips of its current
    alerts (those a re-run no longer raises keep theirs). Returns counts and timings."""
    import json
    import time

    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    ledger = _FileLedger(conn)
    t0 = time.perf_counter()
    run = conn.execute(
        text(
            "SELECT before_scene_id, after_scene_id, parameters FROM detection_runs WHERE id = :r"
        ),
        {"r": run_id},
    ).one()
    params = run.parameters or {}
    for scene, scene_id, key in (
        (result.before, run.before_scene_id, "before_fingerprint"),
        (result.after, run.after_scene_id, "after_fingerprint"),
    ):
        fingerprint = params.get(key)
        if not fingerprint:
            from gis.change.store import scene_fingerprint

            fingerprint = scene_fingerprint(scene)
        cog = write_scene_cog(scene, fingerprint, state_dir, ledger)
        conn.execute(
            UPSERT_COG,
            {
                "scene_id": scene_id,
                "fingerprint": fingerprint,
                "path": str(cog.path),
                "crs": cog.crs,
                "width": cog.width,
                "height": cog.height,
                "bands": json.dumps(cog.bands),
                "stretch": json.dumps(cog.stretch),
            },
        )
    t_cog = time.perf_counter() - t0
    alert_ids = [
        r[0]
        for r in conn.execute(
            text(
                "SELECT id FROM parcel_alerts WHERE run_id = :r AND superseded_at IS NULL ORDER BY id"
            ),
            {"r": run_id},
        )
    ]
    chips = 0
    for alert_id in alert_ids:
        chips += len(make_alert_chips(conn, alert_id, state_dir, ledger=ledger))
    # chip files of this run no row refers to any more (alerts a re-run removed)
    folder = evidence_dir(state_dir) / f"run-{run_id}"
    if folder.is_dir():
        kept = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT e.path FROM alert_evidence e JOIN parcel_alerts a ON a.id = e.alert_id "
                    "WHERE a.run_id = :r"
                ),
                {"r": run_id},
            )
        }
        ledger.replaced.extend(p for p in folder.glob("alert-*.png") if str(p) not in kept)
    return {
        "cogs_s": round(t_cog, 2),
        "chips": chips,
        "chips_s": round(time.perf_counter() - t0 - t_cog, 2),
    }
