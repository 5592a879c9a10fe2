"""Imagery input: Sentinel-2-like scenes as a multi-band GeoTIFF/COG or a folder of per-band files.

A :class:`Scene` describes one acquisition: where each spectral band lives (file and band index),
the grid of its finest band, its date and sensor when they can be told from the names.
A :class:`SceneReader` reads windows of chosen bands *on a target grid* (the grid of the BEFORE
image's finest band), resampling 20 m / 60 m bands and reprojecting a later image whose grid
differs, so that every consumer sees pixel-aligned arrays. Reading is windowed: memory is
bounded by the window size, never by the scene size.

What this module deliberately does not do: atmospheric correction, co-registration beyond the
georeference, pan-sharpening, or reading anything but GDAL rasters. It only needs numpy and
rasterio (the training environment imports it too).

Example
-------
>>> scene = open_scene("data/land/sample_before.tif")          # doctest: +SKIP
>>> with SceneReader(scene, scene.grid) as reader:              # doctest: +SKIP
...     block, valid = reader.read(Window(0, 0, 256, 256), MODEL_BANDS)
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from gis.errors import CRSError, InputFileError

#: Sentinel-2 MSI bands and their native resolution in metres.
SENTINEL2_BANDS: dict[str, int] = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
}
#: Bands the change models use (present in both L1C and L2A products; no 60 m bands).
MODEL_BANDS: tuple[str, ...] = (
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B11",
    "B12",
)
#: The four 10 m bands.
BANDS_10M: tuple[str, ...] = ("B02", "B03", "B04", "B08")

# Band order assumed for multi-band files without band descriptions, by band count.
_ORDER_BY_COUNT: dict[int, tuple[str, ...]] = {
    4: BANDS_10M,
    10: MODEL_BANDS,
    12: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
    13: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"),
}
# Sentinel-2 L2A scene classification values masked as not usable: no data, saturated,
# cloud shadow, cloud medium/high probability, thin cirrus.
SCL_MASKED = (0, 1, 3, 8, 9, 10)

_BAND_RE = re.compile(r"(?:^|[_\-.])(B(?:0?[1-9]|1[0-2]|8A))(?:_\d+m)?$", re.IGNORECASE)
_SCL_RE = re.compile(r"(?:^|[_\-.])SCL(?:_\d+m)?$", re.IGNORECASE)
_DATE_RE = re.compile(r"(20\d{2})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2}))?")
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")


def normalise_band_name(name: str) -> str | None:
    """A Sentinel-2 band name ('B2', 'b02', 'B8a', 'B08_10m') as 'B02'/'B8A', or None.

    >>> normalise_band_name("b8a"), normalise_band_name("B2"), normalise_band_name("red")
    ('B8A', 'B02', None)
    """
    m = re.fullmatch(r"B(0?[1-9]|1[0-2]|8A)(?:_\d+m)?", name.strip(), re.IGNORECASE)
    if not m:
        return None
    num = m.group(1).upper()
    return "B8A" if num == "8A" else f"B{int(num):02d}"


# Common descriptions in multi-band exports (e.g. from SNAP, GEE, QGIS).
_DESCRIPTION_ALIASES = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir08": "B8A",
    "nirnarrow": "B8A",
    "swir1": "B11",
    "swir16": "B11",
    "swir2": "B12",
    "swir22": "B12",
    "coastal": "B01",
}


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and size (the target of all reads)."""

    crs: rasterio.crs.CRS
    transform: rasterio.Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return _bounds(self)

    @property
    def pixel_area_m2(self) -> float:
        """Area of one pixel in m² (approximate for geographic CRSs)."""
        a = abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d)
        if self.crs is not None and self.crs.is_geographic:
            west, south, east, north = _bounds(self)
            lat = math.radians((south + north) / 2)
            return a * (111_320.0**2) * math.cos(lat)
        return a

    def windows(self, tile: int) -> Iterator[Window]:
        """Row-major tiles of at most ``tile`` × ``tile`` pixels covering the grid."""
        for row in range(0, self.height, tile):
            for col in range(0, self.width, tile):
                yield Window(col, row, min(tile, self.width - col), min(tile, self.height - row))


def _bounds(grid: Grid) -> tuple[float, float, float, float]:
    t = grid.transform
    xs = [
        t.c,
        t.c + t.a * grid.width + t.b * grid.height,
        t.c + t.a * grid.width,
        t.c + t.b * grid.height,
    ]
    ys = [
        t.f,
        t.f + t.d * grid.width + t.e * grid.height,
        t.f + t.d * grid.width,
        t.f + t.e * grid.height,
    ]
    return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class BandSource:
    """Where one band lives: a file and a 1-based band index in it."""

    path: Path
    index: int = 1


@dataclass
class Scene:
    """One acquisition: its bands, grid (finest band), date, sensor and value scale."""

    path: Path
    bands: dict[str, BandSource]
    grid: Grid
    nodata: float | None
    acquired_at: dt.datetime | None = None
    sensor: str | None = None
    scl: BandSource | None = None
    dtype: str = "uint16"
    metadata: dict = field(default_factory=dict)

    def require(self, bands: Sequence[str]) -> None:
        """Raise InputFileError naming the scene when a band is missing."""
        missing = [b for b in bands if b not in self.bands]
        if missing:
            have = ", ".join(sorted(self.bands)) or "none"
            raise InputFileError(
                f"{self.path}: missing band(s) {', '.join(missing)} (found: {have})."
            )

    def footprint_lonlat(self) -> list[tuple[float, float]]:
        """The grid outline as (lon, lat) pairs (closed ring), for metadata."""
        from rasterio.warp import transform as warp_transform

        w, s, e, n = _bounds(self.grid)
        xs, ys = [w, e, e, w, w], [s, s, n, n, s]
        lon, lat = warp_transform(self.grid.crs, "EPSG:4326", xs, ys)
        return list(zip(lon, lat, strict=True))


def _open_checked(path: Path) -> rasterio.io.DatasetReader:
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise InputFileError(f"{path}: not a readable raster ({_first_line(exc)}).") from exc
    except RasterioError as exc:
        raise InputFileError(f"{path}: cannot open raster ({_first_line(exc)}).") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _grid_of(ds: rasterio.io.DatasetReader, path: Path) -> Grid:
    if ds.crs is None:
        raise CRSError(f"{path}: the raster has no coordinate reference system.")
    if ds.transform.is_identity:
        raise CRSError(f"{path}: the raster has no georeference (identity transform).")
    return Grid(ds.crs, ds.transform, ds.width, ds.height)


def _scene_date(name: str) -> dt.datetime | None:
    """Acquisition time from an ISO 8601 tag value or a product/file name.

    >>> _scene_date("T48QXH_20240420T033121_B02").isoformat()
    '2024-04-20T03:31:21+00:00'
    >>> _scene_date("2025-04-18T03:31:21Z").isoformat()
    '2025-04-18T03:31:21+00:00'
    """
    try:
        value = dt.datetime.fromisoformat(name.strip())
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    except ValueError:
        pass
    for m in _DATE_RE.finditer(name):
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        try:
            if m.group(4):
                return dt.datetime(
                    y, mo, d, int(m.group(4)), int(m.group(5)), int(m.group(6)), tzinfo=dt.UTC
                )
            return dt.datetime(y, mo, d, tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def _sensor(name: str) -> str | None:
    if re.search(r"S2[AB]|(^|_)T\d{2}[A-Z]{3}(_|$)|MSIL[12]", name):
        return "Sentinel-2"
    if re.search(r"L[COT]0[89]", name):
        return "Landsat"
    return None


def open_scene(path: str | Path) -> Scene:
    """Describe the scene at ``path``: a multi-band raster or a folder of per-band rasters.

    Parameters
    ----------
    path
        A GeoTIFF/COG whose bands are named by their descriptions (``B02``, ``blue``...) or,
        without descriptions, ordered as Sentinel-2 with 4, 10, 12 or 13 bands; or a folder of
        files whose names end in the band (``…_B02.tif``, ``…_B8A.tif``, optional ``…_SCL.tif``).

    Returns
    -------
    Scene

    Raises
    ------
    InputFileError
        The path does not exist, a file is not a readable raster, no band can be identified.
    CRSError
        A raster has no CRS/georeference, or per-band files disagree on the CRS.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file or folder.")
    if path.is_dir():
        return _open_folder(path)
    return _open_multiband(path)


def _open_folder(folder: Path) -> Scene:
    bands: dict[str, BandSource] = {}
    scl: BandSource | None = None
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() not in _RASTER_SUFFIXES:
            continue
        m = _BAND_RE.search(f.stem)
        if m:
            name = normalise_band_name(m.group(1))
            if name:
                bands[name] = BandSource(f)
        elif _SCL_RE.search(f.stem):
            scl = BandSource(f)
    if not bands:
        raise InputFileError(
            f"{folder}: no band files found (expected names ending in _B02.tif, _B8A.tif ...)."
        )
    grids: dict[str, Grid] = {}
    nodata = None
    dtype = "uint16"
    tags: dict = {}
    for name, src in bands.items():
        with _open_checked(src.path) as ds:
            grids[name] = _grid_of(ds, src.path)
            if name in ("B02", "B04") or nodata is None:
                nodata = ds.nodata if ds.nodata is not None else nodata
                dtype = ds.dtypes[0]
            tags.update({k: v for k, v in ds.tags().items() if len(v) < 200})
    crss = {g.crs.to_string() for g in grids.values()}
    if len(crss) > 1:
        raise CRSError(f"{folder}: band files are in different CRSs ({', '.join(sorted(crss))}).")
    finest = min(grids, key=lambda b: (abs(grids[b].transform.a), b))
    grid = grids[finest]
    return Scene(
        path=folder,
        bands=bands,
        grid=grid,
        nodata=nodata,
        scl=scl,
        dtype=dtype,
        acquired_at=_scene_date(next(iter(bands.values())).path.name) or _scene_date(folder.name),
        sensor=_sensor(next(iter(bands.values())).path.name) or _sensor(folder.name),
        metadata={"layout": "band-folder", "finest_band": finest, "tags": tags},
    )


def _open_multiband(path: Path) -> Scene:
    with _open_checked(path) as ds:
        grid = _grid_of(ds, path)
        names: list[str | None] = []
        for i, desc in enumerate(ds.descriptions, start=1):
            tagname = ds.tags(i).get("BANDNAME") or ds.tags(i).get("band")
            raw = desc or tagname or ""
            name = normalise_band_name(raw) or _DESCRIPTION_ALIASES.get(raw.strip().lower())
            names.append(name)
        scl_index = next(
            (i for i, d in enumerate(ds.descriptions, start=1) if d and d.upper() == "SCL"), None
        )
        if not any(names):
            order = _ORDER_BY_COUNT.get(ds.count)
            if order is None:
                raise InputFileError(
                    f"{path}: {ds.count} bands without band descriptions; name the bands "
                    "(B02, B03 ...) or supply 4, 10, 12 or 13 Sentinel-2-ordered bands."
                )
            names = list(order)
        bands = {n: BandSource(path, i) for i, n in enumerate(names, start=1) if n}
        scene = Scene(
            path=path,
            bands=bands,
            grid=grid,
            nodata=ds.nodata,
            dtype=ds.dtypes[0],
            scl=BandSource(path, scl_index) if scl_index else None,
            acquired_at=_scene_date(ds.tags().get("ACQUISITION_DATE", ""))
            or _scene_date(path.name),
            sensor=ds.tags().get("SENSOR") or _sensor(path.name),
            metadata={
                "layout": "multiband",
                "band_count": ds.count,
                "tags": {k: v for k, v in ds.tags().items() if len(v) < 200},
            },
        )
    return scene


def check_alignment(before: Scene, after: Scene) -> None:
    """Raise when AFTER cannot be put on BEFORE's grid: no CRS or no overlap.

    Raises
    ------
    InputFileError
        The two footprints do not overlap.
    """
    from rasterio.warp import transform_bounds

    try:
        a = transform_bounds(after.grid.crs, before.grid.crs, *_bounds(after.grid))
    except Exception as exc:  # pyproj/GDAL raise several types
        raise CRSError(
            f"{after.path}: its CRS {after.grid.crs} cannot be transformed to "
            f"{before.grid.crs} of {before.path}."
        ) from exc
    b = _bounds(before.grid)
    overlap_w = min(a[2], b[2]) - max(a[0], b[0])
    overlap_h = min(a[3], b[3]) - max(a[1], b[1])
    if overlap_w <= 0 or overlap_h <= 0:
        raise InputFileError(f"{after.path}: the image does not overlap {before.path}.")


def same_grid(a: Grid, b: Grid) -> bool:
    return (
        a.crs == b.crs
        and a.width == b.width
        and a.height == b.height
        and a.transform.almost_equals(b.transform)
    )


class SceneReader:
    """Reads windows of a scene's bands on a target grid (context manager).

    Bands already on the grid are read directly; others go through a GDAL warped VRT
    (bilinear for reflectances, nearest for the SCL mask).
    """

    def __init__(self, scene: Scene, grid: Grid, reflectance_scale: float | None = None):
        self.scene = scene
        self.grid = grid
        self._datasets: dict[Path, rasterio.io.DatasetReader] = {}
        self._vrts: dict[tuple[Path, str], WarpedVRT] = {}
        if reflectance_scale is None:
            reflectance_scale = 1.0 if scene.dtype.startswith("float") else 10000.0
        self.scale = reflectance_scale

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for v in self._vrts.values():
            v.close()
        for d in self._datasets.values():
            d.close()
        self._vrts.clear()
        self._datasets.clear()

    def _source(self, path: Path, resampling: Resampling):
        ds = self._datasets.get(path)
        if ds is None:
            ds = self._datasets[path] = _open_checked(path)
        if same_grid(Grid(ds.crs, ds.transform, ds.width, ds.height), self.grid):
            return ds
        key = (path, resampling.name)
        vrt = self._vrts.get(key)
        if vrt is None:
            vrt = self._vrts[key] = WarpedVRT(
                ds,
                crs=self.grid.crs,
                transform=self.grid.transform,
                width=self.grid.width,
                height=self.grid.height,
                resampling=resampling,
                nodata=ds.nodata if ds.nodata is not None else 0,
                src_nodata=ds.nodata if ds.nodata is not None else None,
            )
        return vrt

    def _read(self, src: BandSource, window: Window, resampling: Resampling) -> np.ndarray:
        ds = self._source(src.path, resampling)
        try:
            return ds.read(src.index, window=window, boundless=False)
        except (RasterioIOError, RasterioError) as exc:
            raise InputFileError(
                f"{src.path}: cannot read band {src.index} (corrupt or truncated file: "
                f"{_first_line(exc)})."
            ) from exc

    def read(
        self, window: Window, bands: Sequence[str], cloud_mask: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read ``bands`` in ``window`` of the target grid.

        Returns
        -------
        values : ndarray, float32, shape (len(bands), h, w)
            Values as stored (e.g. reflectance × 10,000 for Sentinel-2 digital numbers).
        valid : ndarray, bool, shape (h, w)
            False where any band is nodata, outside the scene, or (``cloud_mask``) cloud/shadow.
        """
        self.scene.require(bands)
        h, w = int(window.height), int(window.width)
        out = np.empty((len(bands), h, w), dtype=np.float32)
        valid = np.ones((h, w), dtype=bool)
        nodata = self.scene.nodata
        for i, name in enumerate(bands):
            arr = self._read(self.scene.bands[name], window, Resampling.bilinear)
            out[i] = arr
            if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
                valid &= arr != nodata
            valid &= np.isfinite(out[i])
        # Zero in every band = outside the swath or padding, whatever nodata says.
        valid &= np.any(out != 0, axis=0)
        if cloud_mask:
            if self.scene.scl is not None:
                scl = self._read(self.scene.scl, window, Resampling.nearest)
                valid &= ~np.isin(scl, SCL_MASKED)
            else:
                valid &= ~self.spectral_cloud_test(out, bands)
        out[:, ~valid] = 0.0
        return out, valid

    def spectral_cloud_test(self, values: np.ndarray, bands: Sequence[str]) -> np.ndarray:
        """Bright, white pixels (thick cloud) when no SCL band is available.

        A deliberately conservative test: blue reflectance above 0.30 and all visible bands
        above 0.25 (bright roofs rarely pass; thin cloud and shadows are not caught).
        """
        idx = {b: i for i, b in enumerate(bands)}
        if not all(b in idx for b in ("B02", "B03", "B04")):
            return np.zeros(values.shape[1:], dtype=bool)
        s = self.scale
        blue, green, red = (values[idx[b]] / s for b in ("B02", "B03", "B04"))
        return (blue > 0.30) & (green > 0.25) & (red > 0.25)


def band_statistics(
    scene: Scene,
    grid: Grid,
    bands: Sequence[str],
    max_pixels: int = 2_000_000,
    sample: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per-band mean and standard deviation over the valid pixels of a scene.

    The scene is read at a decimated resolution (at most ``max_pixels`` pixels), which is enough
    for per-image radiometric normalisation and keeps a full tile cheap; ``sample`` is that
    read (:func:`read_sample`) when the caller already has it.

    Returns
    -------
    mean, std : ndarray (len(bands),)
    valid_fraction : float
        Fraction of valid pixels (not nodata, not cloud).
    cloud_fraction : float
        Fraction of pixels that carry data but were masked as cloud/shadow.
    """
    values, valid, has_data = sample or read_sample(scene, grid, bands, max_pixels)
    n = int(valid.sum())
    total = valid.size
    if n == 0:
        raise InputFileError(f"{scene.path}: the image has no valid pixels (all nodata or cloud).")
    v = values[:, valid]
    mean = v.mean(axis=1, dtype=np.float64)
    std = v.std(axis=1, dtype=np.float64)
    std[std < 1e-6] = 1.0
    cloud = float((has_data & ~valid).sum()) / total
    return mean.astype(np.float32), std.astype(np.float32), n / total, cloud


def sample_windows(grid: Grid, max_pixels: int = 2_000_000, size: int = 256) -> list[Window]:
    """The whole grid when it is small, else an even lattice of ``size``² windows holding
    about ``max_pixels`` pixels (cheap and representative statistics for a full tile)."""
    if grid.width * grid.height <= max_pixels:
        return [Window(0, 0, grid.width, grid.height)]
    n = max(2, math.ceil(math.sqrt(max_pixels / size**2)))
    rows = np.linspace(0, max(grid.height - size, 0), n).astype(int)
    cols = np.linspace(0, max(grid.width - size, 0), n).astype(int)
    return [
        Window(int(c), int(r), min(size, grid.width), min(size, grid.height))
        for r in rows
        for c in cols
    ]


def read_sample(
    scene: Scene, grid: Grid, bands: Sequence[str], max_pixels: int = 2_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values (bands, n) with valid and has-data masks (n,) of :func:`sample_windows`."""
    vals, valids, datas = [], [], []
    with SceneReader(scene, grid) as reader:
        for win in sample_windows(grid, max_pixels):
            v, ok = reader.read(win, bands, cloud_mask=True)
            has = ok if ok.all() else reader.read(win, bands, cloud_mask=False)[1]
            vals.append(v.reshape(len(bands), -1))
            valids.append(ok.ravel())
            datas.append(has.ravel())
    return np.concatenate(vals, axis=1), np.concatenate(valids), np.concatenate(datas)


def normalise(
    values: np.ndarray, mean: np.ndarray, std: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """Per-image radiometric normalisation: (x − mean) / std per band, clipped to ±6, 0 where
    invalid."""
    out = (values - mean[:, None, None]) / std[:, None, None]
    np.clip(out, -6.0, 6.0, out=out)
    if valid is not None:
        out[:, ~valid] = 0.0
    return out.astype(np.float32, copy=False)


def read_full(scene: Scene, grid: Grid, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a whole (small) scene on ``grid``; for training and tests, not for full tiles."""
    with SceneReader(scene, grid) as reader:
        return reader.read(Window(0, 0, grid.width, grid.height), bands)
