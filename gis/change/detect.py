"""Change detection over a scene pair, tile by tile, locally or on a Dask cluster.

Pipeline (``detect_changes``):

1. open both scenes, check bands, CRS and overlap; the grid is BEFORE's finest band;
2. per-image radiometric statistics from a decimated read (normalisation; CVA's Otsu threshold);
3. for each tile (with a halo so the CNN and the morphology see context): read both images on
   the grid, normalise, change probability, threshold, morphological opening, land-cover
   class per date, connected components, component statistics and polygons; components that
   lie inside the tile and are smaller than the minimum mapping unit are dropped there;
4. components cut by tile edges are merged across tiles, the minimum mapping unit applied to
   them, polygons simplified, from→to classes and a seasonal/conversion kind assigned;
5. the change mask (1 change, 0 no change, 255 no data) is written window by window to a
   temporary GeoTIFF, then renamed.

Memory is bounded by the tile size (about 0.5 GB at 1,024 px with the CNN), not by the scene.
The tile function :func:`process_tile` is a pure function of a picklable :class:`TileJob`, so
the same code runs in-process or on ``dask.distributed`` workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from gis.change.models import Detector, load_detector
from gis.errors import InputFileError
from gis.imagery import (
    BANDS_10M,
    MODEL_BANDS,
    Grid,
    Scene,
    SceneReader,
    band_statistics,
    check_alignment,
    normalise,
    open_scene,
    read_sample,
)
from gis.land_cover import COVER_NAMES, classify

Progress = Callable[[int, int], None]

#: Cover classes between which change is seasonal on cropland (rice cycle: flooded → green →
#: harvested/bare); see gis/alerts.py for how the rules use it.
SEASONAL_CLASSES = frozenset({"vegetation", "water", "bare"})


@dataclass
class DetectionConfig:
    """Parameters of a detection run (recorded with the run)."""

    method: str = "cnn"
    model_dir: Path | None = None
    model_path: Path | None = None
    threshold: float = 0.5
    tile: int = 1024
    min_mapping_unit_m2: float = 300.0
    opening: int = 0
    simplify_px: float = 0.5
    threads: int = 2
    tta: bool = False  # cnn: average the four flips (4x the model time)
    cva_rule: str = "noise"  # cva: "noise" (4 × the scene's median magnitude) or "otsu"
    dask_scheduler: str | None = None
    gdal_cache_mb: int = 128
    #: confidence calibration: "auto" (the model's ``<version>.calibration.json`` when it is
    #: shipped), "none" (raw mean probability), or a calibration file
    calibration: str | Path = "auto"

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "threshold": self.threshold,
            "tile": self.tile,
            "min_mapping_unit_m2": self.min_mapping_unit_m2,
            "opening": self.opening,
            "simplify_px": self.simplify_px,
            "tta": self.tta,
            "cva_rule": self.cva_rule,
            "model_path": str(self.model_path) if self.model_path else None,
            "dask_scheduler": self.dask_scheduler,
            "calibration": str(self.calibration),
        }


@dataclass
class TileJob:
    before: Scene
    after: Scene
    grid: Grid
    bands: tuple[str, ...]
    stats: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    detector: Detector
    window: Window
    halo: int
    threshold: float
    opening: int
    mmu_pixels: float
    gdal_cache_mb: int = 128


@dataclass
class TileResult:
    window: Window
    mask: np.ndarray
    features: list[dict]
    n_valid: int
    n_change: int
    seconds: float


@dataclass
class DetectionResult:
    """What a run found: change polygons (grid CRS), the grid, scene info and statistics."""

    before: Scene
    after: Scene
    grid: Grid
    method: str
    model_version: str
    features: list[dict]
    stats: dict
    timings: dict
    parameters: dict
    scene_info: dict = field(default_factory=dict)


def _expand(window: Window, halo: int, grid: Grid) -> Window:
    c0 = max(0, int(window.col_off) - halo)
    r0 = max(0, int(window.row_off) - halo)
    c1 = min(grid.width, int(window.col_off + window.width) + halo)
    r1 = min(grid.height, int(window.row_off + window.height) + halo)
    return Window(c0, r0, c1 - c0, r1 - r0)


def process_tile(job: TileJob) -> TileResult:
    """Change mask and change components of one tile (runs locally or on a Dask worker)."""
    import shapely
    from rasterio.features import shapes
    from scipy import ndimage
    from shapely.geometry import shape

    t0 = time.perf_counter()
    big = _expand(job.window, job.halo, job.grid)
    with (
        rasterio.Env(GDAL_CACHEMAX=job.gdal_cache_mb * 1024 * 1024),
        SceneReader(job.before, job.grid) as rb,
        SceneReader(job.after, job.grid) as ra,
    ):
        bv, bvalid = rb.read(big, job.bands)
        av, avalid = ra.read(big, job.bands)
        scale_b, scale_a = rb.scale, ra.scale
    valid = bvalid & avalid
    mb, sb, ma, sa = job.stats
    prob = job.detector.probability(normalise(bv, mb, sb, valid), normalise(av, ma, sa, valid))
    change = (prob >= job.threshold) & valid
    if job.opening:
        change = ndimage.binary_opening(change, iterations=job.opening) & valid
    cover_b = classify(bv, job.bands, valid, scale_b)
    cover_a = classify(av, job.bands, valid, scale_a)
    del bv, av
    # crop the halo
    r0 = int(job.window.row_off - big.row_off)
    c0 = int(job.window.col_off - big.col_off)
    h, w = int(job.window.height), int(job.window.width)
    core = (slice(r0, r0 + h), slice(c0, c0 + w))
    change, valid, prob = change[core], valid[core], prob[core]
    cover_b, cover_a = cover_b[core], cover_a[core]

    # Change components: the minimum mapping unit applies to them (and to the mask).
    labels, n = ndimage.label(change)
    features: list[dict] = []
    if n:
        npx = np.bincount(labels.ravel(), minlength=n + 1)
        edge = _touches_tile_edge(labels, n, job.window, job.grid)
        small = (npx < job.mmu_pixels) & ~edge
        small[0] = False
        if small.any():
            change &= ~small[labels]
            labels = np.where(small[labels], 0, labels)
        parts, m = _split_by_cover(labels, npx, cover_a, job.mmu_pixels)
        ppx = np.bincount(parts.ravel(), minlength=m + 1)
        psum = np.bincount(parts.ravel(), weights=prob.ravel(), minlength=m + 1)
        fcount = np.bincount((parts * 5 + cover_b).ravel(), minlength=(m + 1) * 5).reshape(-1, 5)
        tcount = np.bincount((parts * 5 + cover_a).ravel(), minlength=(m + 1) * 5).reshape(-1, 5)
        part_edge = _touches_tile_edge(parts, m, job.window, job.grid)
        # a part of a component that reaches the mapping unit is kept whatever its own size
        parent = np.zeros(m + 1, dtype=np.int64)
        parent[parts.ravel()] = labels.ravel()
        parent_big = npx[parent] >= job.mmu_pixels
        tf = window_transform(job.window, job.grid.transform)
        pieces: dict[int, list] = {}
        for geom, value in shapes(
            parts.astype(np.int32), mask=parts > 0, transform=tf, connectivity=4
        ):
            pieces.setdefault(int(value), []).append(shape(geom))
        for k, geoms in pieces.items():
            features.append(
                {
                    "geometry": geoms[0] if len(geoms) == 1 else shapely.union_all(geoms),
                    "n_pixels": int(ppx[k]),
                    "prob_sum": float(psum[k]),
                    "from_counts": fcount[k].tolist(),
                    "to_counts": tcount[k].tolist(),
                    "edge": bool(part_edge[k]),
                    "in_mapped_change": bool(parent_big[k]),
                }
            )
    mask = np.where(valid, change.astype(np.uint8), np.uint8(255)).astype(np.uint8)
    return TileResult(
        job.window, mask, features, int(valid.sum()), int(change.sum()), time.perf_counter() - t0
    )


#: A class region becomes a polygon only if it also holds this share of its change: smaller
#: ones are mostly cover-class confusion (bare soil read as built-up at field edges).
MIN_SPLIT_SHARE = 0.15


def _split_by_cover(
    labels: np.ndarray, comp_size: np.ndarray, cover_after: np.ndarray, mmu_pixels: float
) -> tuple[np.ndarray, int]:
    """Cut change components into polygons by the after-date cover class.

    A house built in a paddy must not merge with the harvested paddy next to it into one
    "seasonal" change: each polygon is reported, and matched to parcels, by its majority
    classes. Only class regions reaching the mapping unit and :data:`MIN_SPLIT_SHARE` of their
    change become polygons; smaller ones (mostly class noise at field edges) stay in the change
    mask but in no polygon, so they cannot spill a built-up polygon onto the next parcel; a
    change without any such region stays one polygon. ``comp_size``: pixels per label.
    """
    from scipy import ndimage

    changed = labels > 0
    n = len(comp_size) - 1
    parts = np.zeros(labels.shape, dtype=np.int64)
    m = 0
    for code in np.unique(cover_after[changed]):
        sub, k = ndimage.label(changed & (cover_after == code))
        size = np.bincount(sub.ravel(), minlength=k + 1)
        comp = np.zeros(k + 1, dtype=np.int64)
        comp[sub.ravel()] = labels.ravel()
        keep = (size >= max(mmu_pixels, 1)) & (size >= MIN_SPLIT_SHARE * comp_size[comp])
        keep[0] = False
        remap = np.zeros(k + 1, dtype=np.int64)
        remap[keep] = np.arange(m + 1, m + 1 + int(keep.sum()))
        parts = np.where(remap[sub] > 0, remap[sub], parts)
        m += int(keep.sum())
    rest = changed & (parts == 0)
    if rest.any():
        has_part = np.zeros(n + 1, dtype=bool)
        has_part[labels[parts > 0]] = True
        whole = rest & ~has_part[labels]
        if whole.any():
            ids = np.unique(labels[whole])
            remap = np.zeros(n + 1, dtype=np.int64)
            remap[ids] = np.arange(m + 1, m + 1 + len(ids))
            parts[whole] = remap[labels[whole]]
            m += len(ids)
    return parts, m


def _touches_tile_edge(labels: np.ndarray, n: int, window: Window, grid: Grid) -> np.ndarray:
    """Per label: does it touch a tile edge that is not the image's edge."""
    edge = np.zeros(n + 1, dtype=bool)
    h, w = labels.shape
    if window.row_off > 0:
        edge[labels[0]] = True
    if window.row_off + h < grid.height:
        edge[labels[-1]] = True
    if window.col_off > 0:
        edge[labels[:, 0]] = True
    if window.col_off + w < grid.width:
        edge[labels[:, -1]] = True
    edge[0] = False
    return edge


def _merge_edge_features(features: list[dict]) -> list[dict]:
    """Union the polygons of the same after-date class cut by tile edges; sum their
    statistics."""
    inner = [f for f in features if not f["edge"]]
    by_class: dict[str | None, list[dict]] = {}
    for f in features:
        if f["edge"]:
            by_class.setdefault(_majority(f["to_counts"]), []).append(f)
    for edge in by_class.values():
        inner.extend(_union_pieces(edge))
    return inner


def _union_pieces(edge: list[dict]) -> list[dict]:
    import shapely
    from shapely.strtree import STRtree

    out: list[dict] = []
    geoms = [f["geometry"] for f in edge]
    merged = shapely.get_parts(shapely.union_all(geoms))
    # each piece belongs to exactly one merged part: the one holding its interior point
    points = shapely.point_on_surface(np.array(geoms, dtype=object))
    piece_idx, part_idx = STRtree(merged).query(points, predicate="intersects")
    owner = np.full(len(geoms), -1)
    owner[piece_idx] = part_idx
    for k, part in enumerate(merged):
        members = [edge[i] for i in np.flatnonzero(owner == k)]
        if not members:
            continue
        out.append(
            {
                "geometry": part,
                "n_pixels": sum(m["n_pixels"] for m in members),
                "prob_sum": sum(m["prob_sum"] for m in members),
                "from_counts": np.sum([m["from_counts"] for m in members], axis=0).tolist(),
                "to_counts": np.sum([m["to_counts"] for m in members], axis=0).tolist(),
                "edge": False,
                "in_mapped_change": any(m["in_mapped_change"] for m in members),
            }
        )
    return out


def _majority(counts: list[int]) -> str | None:
    known = counts[1:5]
    if sum(known) == 0:
        return None
    return COVER_NAMES[int(np.argmax(known)) + 1]


def change_kind(from_class: str | None, to_class: str | None) -> str:
    """'conversion' when built-up appears or disappears, 'seasonal' when both classes are among
    vegetation/water/bare (crop cycle on paddies), otherwise 'other' (e.g. built-up rebuilt).

    >>> change_kind("vegetation", "built_up"), change_kind("water", "vegetation")
    ('conversion', 'seasonal')
    """
    if from_class != to_class and "built_up" in (from_class, to_class):
        return "conversion"
    if from_class in SEASONAL_CLASSES and to_class in SEASONAL_CLASSES:
        return "seasonal"
    return "other"


def projected_area_crs(grid: Grid):
    """The CRS areas are measured in: the grid's if projected, else the local UTM zone."""
    from pyproj import CRS

    crs = CRS.from_user_input(grid.crs.to_wkt())
    if crs.is_projected:
        return crs
    w, s, e, n = grid.bounds
    lon, lat = (w + e) / 2, (s + n) / 2
    zone = int((lon + 180) // 6) + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _finish_features(
    features: list[dict], grid: Grid, mmu_pixels: float, simplify_px: float
) -> tuple[list[dict], list]:
    import shapely
    from pyproj import CRS, Transformer
    from shapely.geometry import MultiPolygon, Polygon

    keep, dropped = [], []
    for f in features:
        big = f["n_pixels"] >= mmu_pixels or f["in_mapped_change"]
        (keep if big else dropped).append(f)
    px = abs(grid.transform.a)
    area_crs = projected_area_crs(grid)
    src = CRS.from_user_input(grid.crs.to_wkt())
    to_area = None if src == area_crs else Transformer.from_crs(src, area_crs, always_xy=True)
    out = []
    for i, f in enumerate(sorted(keep, key=lambda f: -f["n_pixels"]), start=1):
        geom = shapely.simplify(f["geometry"], px * simplify_px, preserve_topology=True)
        geom = shapely.make_valid(geom)
        polys = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon) and not g.is_empty]
        if not polys:
            continue
        geom = MultiPolygon(polys)
        metric = (
            shapely.transform(
                geom, lambda xy: np.column_stack(to_area.transform(xy[:, 0], xy[:, 1]))
            )
            if to_area
            else geom
        )
        frm, to = _majority(f["from_counts"]), _majority(f["to_counts"])
        out.append(
            {
                "id": i,
                "geometry": geom,
                "area_m2": round(float(metric.area), 1),
                "n_pixels": f["n_pixels"],
                "from_class": frm,
                "to_class": to,
                "kind": change_kind(frm, to),
                "confidence": round(f["prob_sum"] / max(f["n_pixels"], 1), 3),
            }
        )
    return out, [f["geometry"] for f in dropped]


def _client(config: DetectionConfig, client):
    if client is not None:
        return client, False
    if config.dask_scheduler:
        from dask.distributed import Client

        return Client(config.dask_scheduler), True
    return None, False


def _run_tiles(jobs: list[TileJob], client, progress: Progress | None) -> Iterable[TileResult]:
    total = len(jobs)
    if client is None:
        for i, job in enumerate(jobs, start=1):
            yield process_tile(job)
            if progress:
                progress(i, total)
        return
    from dask.distributed import as_completed

    futures = client.map(process_tile, jobs, pure=False)
    for i, fut in enumerate(as_completed(futures), start=1):
        yield fut.result()
        fut.release()
        if progress:
            progress(i, total)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def detect_changes(
    before_path: str | Path,
    after_path: str | Path,
    config: DetectionConfig | None = None,
    mask_out: str | Path | None = None,
    progress: Progress | None = None,
    client=None,
) -> DetectionResult:
    """Detect land-cover change between two images of the same place.

    Parameters
    ----------
    before_path, after_path
        Multi-band GeoTIFFs or folders of per-band GeoTIFFs (see :func:`gis.imagery.open_scene`).
    config
        Method, threshold, tile size, minimum mapping unit...
    mask_out
        Optional single-band uint8 GeoTIFF on BEFORE's grid: 1 change, 0 no change, 255 nodata.
    progress
        Called with (tiles done, tiles total).
    client
        A ``dask.distributed.Client`` to run the tiles on (else ``config.dask_scheduler``, else
        in-process).

    Raises
    ------
    InputFileError, CRSError
        Unreadable, non-overlapping, unalignable or empty images, missing bands.
    """
    config = config or DetectionConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    before, after = open_scene(before_path), open_scene(after_path)
    detector = load_detector(
        config.method,
        config.model_dir,
        config.model_path,
        threads=config.threads,
        tta=config.tta,
        cva_rule=config.cva_rule,
    )
    calibration = _load_calibration(detector, config)  # a bad file fails before any tile
    if config.method == "cva":
        common = [b for b in MODEL_BANDS if b in before.bands and b in after.bands]
        bands = tuple(common) if set(BANDS_10M) <= set(common) else MODEL_BANDS
    else:
        bands = tuple(getattr(detector, "bands", ()) or MODEL_BANDS)
    before.require(bands)
    after.require(bands)
    check_alignment(before, after)
    grid = before.grid
    # one decimated read of each scene serves the statistics and the detector's scene fit
    sample_b = read_sample(before, grid, bands)
    mb, sb, vb, cb = band_statistics(before, grid, bands, sample=sample_b)
    sample_a = read_sample(after, grid, bands)
    ma, sa, va, ca = band_statistics(after, grid, bands, sample=sample_a)
    if getattr(detector, "needs_scene_fit", False):
        _fit_on_scene(detector, sample_b, sample_a, (mb, sb, ma, sa))
    del sample_b, sample_a  # ~200 MB: not kept through the tiles
    timings["prepare_s"] = round(time.perf_counter() - t0, 3)

    pixel_area = grid.pixel_area_m2
    mmu_pixels = config.min_mapping_unit_m2 / pixel_area if pixel_area > 0 else 0
    halo = detector.halo + 2 * config.opening
    jobs = [
        TileJob(
            before,
            after,
            grid,
            bands,
            (mb, sb, ma, sa),
            detector,
            win,
            halo,
            config.threshold,
            config.opening,
            mmu_pixels,
            config.gdal_cache_mb,
        )
        for win in grid.windows(config.tile)
    ]
    tmp = None
    dst = None
    features: list[dict] = []
    n_valid = n_change = 0
    client, own_client = _client(config, client)
    t1 = time.perf_counter()
    env = rasterio.Env(GDAL_CACHEMAX=config.gdal_cache_mb * 1024 * 1024)
    env.__enter__()
    try:
        if mask_out is not None:
            mask_out = Path(mask_out)
            tmp = _temp_path(mask_out)
            dst = rasterio.open(
                tmp,
                "w",
                driver="GTiff",
                width=grid.width,
                height=grid.height,
                count=1,
                dtype="uint8",
                crs=grid.crs,
                transform=grid.transform,
                nodata=255,
                tiled=True,
                blockxsize=256,
                blockysize=256,
                compress="deflate",
                BIGTIFF="IF_SAFER",
            )
        for res in _run_tiles(jobs, client, progress):
            n_valid += res.n_valid
            n_change += res.n_change
            features.extend(res.features)
            if dst is not None:
                dst.write(res.mask, 1, window=res.window)
        timings["tiles_s"] = round(time.perf_counter() - t1, 3)
        if n_valid == 0:
            raise InputFileError(
                f"{after.path}: no pixel is valid in both images (nodata or cloud everywhere "
                f"they overlap {before.path})."
            )
        t2 = time.perf_counter()
        features = _merge_edge_features(features)
        final, dropped = _finish_features(features, grid, mmu_pixels, config.simplify_px)
        _apply_calibration(final, calibration)
        if dst is not None and dropped:
            dst.close()
            dst = rasterio.open(tmp, "r+")
            _erase(dst, dropped, grid)
        timings["vectorise_s"] = round(time.perf_counter() - t2, 3)
        if dst is not None:
            dst.close()
            dst = None
            os.replace(tmp, mask_out)
            tmp = None
    finally:
        if dst is not None:
            dst.close()
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink()
        if own_client:
            client.close()
        env.__exit__(None, None, None)
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    total_px = grid.width * grid.height
    stats = {
        "pixels": total_px,
        "valid_pixels": n_valid,
        "change_pixels": n_change,
        "change_fraction": round(n_change / n_valid, 5) if n_valid else 0.0,
        "polygons": len(final),
        "changed_area_m2": round(sum(f["area_m2"] for f in final), 1),
        "by_kind": _count_by(final, "kind"),
        "megapixels_per_s": round(total_px / 1e6 / max(timings["tiles_s"], 1e-9), 3),
        "tiles": len(jobs),
    }
    scene_info = {
        "before": _scene_info(before, 1 - vb, cb),
        "after": _scene_info(after, 1 - va, ca),
    }
    return DetectionResult(
        before=before,
        after=after,
        grid=grid,
        method=config.method,
        model_version=detector.version,
        features=final,
        stats=stats,
        timings=timings,
        parameters={
            **config.as_dict(),
            "bands": list(bands),
            "calibration": str(calibration.path) if calibration else None,
        },
        scene_info=scene_info,
    )


def _load_calibration(detector, config: DetectionConfig):
    """The confidence calibration of this run (:mod:`gis.change.calibration`) or None."""
    from gis.change.calibration import find_calibration, load_calibration
    from gis.change.models import MODEL_DIR

    if str(config.calibration) == "none":
        return None
    if str(config.calibration) == "auto":
        return find_calibration(
            detector.version, getattr(detector, "path", None), Path(config.model_dir or MODEL_DIR)
        )
    return load_calibration(Path(config.calibration), detector.version)


def _apply_calibration(features: list[dict], calibration) -> None:
    """Each polygon's raw confidence (its mean probability) is kept as ``confidence_raw``;
    ``confidence`` becomes the calibrated one when there is a calibration."""
    for f in features:
        f["confidence_raw"] = f["confidence"]
    if calibration is None or not features:
        return
    calibrated = calibration.apply([f["confidence_raw"] for f in features])
    for f, c in zip(features, calibrated, strict=True):
        f["confidence"] = round(float(c), 3)


def _count_by(features: list[dict], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in features:
        out[str(f[key])] = out.get(str(f[key]), 0) + 1
    return out


def _scene_info(scene: Scene, invalid_fraction: float, cloud_fraction: float) -> dict:
    return {
        "path": str(scene.path),
        "sensor": scene.sensor,
        "acquired_at": scene.acquired_at,
        "crs": scene.grid.crs.to_string(),
        "transform": list(scene.grid.transform)[:6],
        "width": scene.grid.width,
        "height": scene.grid.height,
        "bands": sorted(scene.bands),
        "cloud_fraction": round(cloud_fraction, 5),
        "nodata_fraction": round(max(invalid_fraction - cloud_fraction, 0.0), 5),
        "metadata": {k: v for k, v in scene.metadata.items() if k != "tags"},
        "footprint": scene.footprint_lonlat(),
    }


def _fit_on_scene(detector, sample_before, sample_after, stats) -> None:
    """Let a detector measure the whole scene pair (CVA's threshold, the CNN's difference
    scale) on the decimated samples (:func:`read_sample`), so every tile is scored alike."""
    bv, bvalid, _ = sample_before
    av, avalid, _ = sample_after
    valid = bvalid & avalid
    mb, sb, ma, sa = stats
    bn = normalise(bv[:, None, :], mb, sb, valid[None, :])
    an = normalise(av[:, None, :], ma, sa, valid[None, :])
    detector.fit(bn, an, valid[None, :])


def _erase(dst, geoms: list, grid: Grid) -> None:
    """Set the pixels of dropped (below minimum mapping unit) components back to 0."""
    from rasterio.features import rasterize
    from rasterio.windows import from_bounds

    for geom in geoms:
        win = from_bounds(*geom.bounds, transform=grid.transform).round_offsets().round_lengths()
        win = win.intersection(Window(0, 0, grid.width, grid.height))
        win = Window(
            int(win.col_off),
            int(win.row_off),
            max(1, int(win.width) + 1),
            max(1, int(win.height) + 1),
        ).intersection(Window(0, 0, grid.width, grid.height))
        block = dst.read(1, window=win)
        burn = rasterize(
            [(geom, 1)],
            out_shape=block.shape,
            transform=window_transform(win, grid.transform),
            fill=0,
            dtype="uint8",
        ).astype(bool)
        block[burn & (block == 1)] = 0
        dst.write(block, 1, window=win)
