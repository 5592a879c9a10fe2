"""Change detection over a time series of scenes: like compared with like, conversions
confirmed by persistence.

In the Red River Delta the same paddy is flooded (transplanting, Feb and Jun–Jul), green
(growth), bare stubble (harvest, Jun and Oct) and fallow or a winter crop (Nov–Jan) within one
year, so two scenes taken a few months apart differ everywhere rice grows. With more than two
dates, :func:`detect_series`

1. opens every scene, checks that they are one product (same sensor, processing level, band set
   and pixel size), that each overlaps the others and that each has a date (file tags or
   names, or ``dates``); scenes without a valid pixel (cloud, nodata) are left out as unusable,
   and fewer than two usable dates is an error naming the files;
2. takes the latest scene as the target and compares it with the earlier scene that matches it
   best: one of the same season (acquisition day of year within :data:`SEASON_WINDOW_DAYS`) of
   an earlier year (at least :data:`MIN_YEAR_GAP_DAYS` before), and among those, or when there
   is none among all earlier scenes, the one whose vegetation state (NDVI, the phenology) is
   closest to the target's (median absolute NDVI difference over a sample of the pixels valid
   in both). The pair goes through the ordinary two-date detection
   (:func:`gis.change.detect.detect_changes`);
3. confirms each conversion polygon (built-up appearing or disappearing) by persistence: the
   polygon's majority cover class is read on every scene after the reference; the change date
   is the first scene of the final run of "after" states (built-up for new built-up), and the
   conversion is kept only when that run holds at least ``min_persist`` scenes and is never
   interrupted by vegetation, water or bare (a paddy between crops, misread as built-up on one
   date, returns to water or green on the next). A conversion seen only on the target date is
   *pending* (reported, not stored, confirmed by the next scene); one that went back is
   *reverted*. Seasonal polygons (vegetation ↔ water ↔ bare) are kept as ``seasonal``, which
   the alert rules ignore on cropland.

Dates whose share of valid pixels inside a polygon is under half (cloud) are not counted for or
against it.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gis.errors import InputFileError, InvalidValueError
from gis.imagery import Scene, check_alignment, open_scene, read_sample

#: Two scenes are of the same season when their days of the year are this close.
SEASON_WINDOW_DAYS = 45
#: ... and of different years when this far apart.
MIN_YEAR_GAP_DAYS = 300
#: Polygon pixels that must be valid on a date for that date to count.
MIN_VALID_SHARE = 0.5
#: Relative difference of pixel size beyond which two scenes are different products.
RESOLUTION_TOLERANCE = 0.01

_LEVEL_TAGS = ("PROCESSING_LEVEL", "PRODUCT_TYPE", "PROCESSING:LEVEL", "PRODUCTTYPE", "LEVEL")
_LEVEL_RE = re.compile(r"(?:MSI|LEVEL[-_ ]?|(?<![A-Z0-9]))(L?[12][ABC])(?![A-Z0-9])", re.IGNORECASE)


@dataclass
class SeriesScene:
    scene: Scene
    date: dt.date
    valid_fraction: float = 1.0
    usable: bool = True
    note: str = ""

    @property
    def path(self) -> Path:
        return self.scene.path


def processing_level(scene: Scene) -> str | None:
    """'L1C', 'L2A' ... from the scene's tags or its file/folder name; None when unknown.

    >>> s = Scene(Path("S2A_MSIL2A_20240420T033121_T48QXH"), {}, None, None)
    >>> processing_level(s)
    'L2A'
    """
    tags = {k.upper(): str(v) for k, v in scene.metadata.get("tags", {}).items()}
    texts = [tags[k] for k in _LEVEL_TAGS if k in tags]
    names = [scene.path.name] + [src.path.name for src in list(scene.bands.values())[:1]]
    for text in texts + names:
        m = _LEVEL_RE.search(text.replace("Level-", "L").replace("LEVEL-", "L"))
        if m:
            level = m.group(1).upper()
            return level if level.startswith("L") else "L" + level
    return None


def _pixel_size(scene: Scene) -> float:
    t = scene.grid.transform
    return math.hypot(t.a, t.d)


def _describe(scene: Scene) -> dict:
    return {
        "sensor": scene.sensor,
        "level": processing_level(scene),
        "bands": sorted(scene.bands),
        "pixel": _pixel_size(scene),
        "float": scene.dtype.startswith("float"),
    }


def check_same_product(first: Scene, other: Scene) -> None:
    """Raise InputFileError naming ``other`` when it is not the same kind of product."""
    a, b = _describe(first), _describe(other)
    if a["sensor"] and b["sensor"] and a["sensor"] != b["sensor"]:
        raise InputFileError(
            f"{other.path}: sensor {b['sensor']}, but {first.path} is {a['sensor']}; a time "
            "series must come from one sensor."
        )
    if a["level"] and b["level"] and a["level"] != b["level"]:
        raise InputFileError(
            f"{other.path}: processing level {b['level']}, but {first.path} is {a['level']} "
            "(top-of-atmosphere and surface reflectance are not comparable); use one level."
        )
    if a["bands"] != b["bands"]:
        missing = sorted(set(a["bands"]) - set(b["bands"]))
        extra = sorted(set(b["bands"]) - set(a["bands"]))
        what = "; ".join(
            x
            for x in (
                f"lacks {', '.join(missing)}" if missing else "",
                f"has {', '.join(extra)} too" if extra else "",
            )
            if x
        )
        raise InputFileError(
            f"{other.path}: its bands differ from {first.path}'s ({what}): not the same product."
        )
    if abs(a["pixel"] - b["pixel"]) > RESOLUTION_TOLERANCE * a["pixel"]:
        raise InputFileError(
            f"{other.path}: {b['pixel']:g} pixels, but {first.path} has {a['pixel']:g}: "
            "not the same product (resolution)."
        )
    if a["float"] != b["float"]:
        raise InputFileError(
            f"{other.path}: its values are {'floats' if b['float'] else 'integers'}, "
            f"{first.path}'s are not: not the same processing."
        )


def parse_dates(text: str | Sequence[str] | None, n: int) -> list[dt.date] | None:
    """``--dates`` (comma-separated YYYY-MM-DD, one per scene, in the scenes' order)."""
    if text is None:
        return None
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    if len(items) != n:
        raise InvalidValueError(
            f"--dates: {len(items)} dates for {n} scenes (give one per scene, in their order)."
        )
    out = []
    for item in items:
        try:
            out.append(dt.date.fromisoformat(item))
        except ValueError as exc:
            raise InvalidValueError(f"--dates: '{item}' is not a date (YYYY-MM-DD).") from exc
    return out


def open_series(
    paths: Sequence[str | Path], dates: Sequence[dt.date] | None = None
) -> list[SeriesScene]:
    """Open and check the scenes of a series, sorted by date (see the module docstring).

    Raises
    ------
    InputFileError
        A scene that cannot be read, has no date, is another product than the first, does not
        overlap the others, shares its date with another, or fewer than two usable dates.
    """
    if len(paths) < 2:
        raise InputFileError("a time series needs at least two scenes.")
    if dates is not None and len(dates) != len(paths):
        raise InvalidValueError(f"{len(dates)} dates for {len(paths)} scenes.")
    items: list[SeriesScene] = []
    for i, p in enumerate(paths):
        scene = open_scene(p)
        date = (
            dates[i]
            if dates is not None
            else (scene.acquired_at.date() if scene.acquired_at else None)
        )
        if date is None:
            raise InputFileError(
                f"{scene.path}: no acquisition date in its tags or name (…_20240420T033121…); "
                "give the dates with --dates."
            )
        if dates is not None:
            scene.acquired_at = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
        if items:
            check_same_product(items[0].scene, scene)
            for other in items:
                check_alignment(other.scene, scene)
        items.append(SeriesScene(scene, date))
    seen: dict[dt.date, Path] = {}
    for it in items:
        if it.date in seen:
            raise InputFileError(
                f"{it.path}: same date ({it.date}) as {seen[it.date]}; give one scene per date."
            )
        seen[it.date] = it.path
    items.sort(key=lambda it: it.date)
    return items


def _day_distance(a: dt.date, b: dt.date) -> int:
    d = abs(a.timetuple().tm_yday - b.timetuple().tm_yday)
    return min(d, 365 - d)


def _ndvi(values: np.ndarray) -> np.ndarray:
    red, nir = values[0], values[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nir + red > 0, (nir - red) / (nir + red), 0.0)


def choose_reference(items: list[SeriesScene], samples: dict[int, tuple]) -> tuple[int, dict]:
    """Index of the earlier scene the target (the last) is compared with, and why.

    ``samples``: per index, (ndvi, valid) of the same sample pixels on the target's grid.
    """
    target = items[-1]
    ndvi_t, valid_t = samples[len(items) - 1]
    rows = []
    for i, it in enumerate(items[:-1]):
        if not it.usable:
            continue
        ndvi_i, valid_i = samples[i]
        both = valid_t & valid_i
        diff = float(np.median(np.abs(ndvi_i[both] - ndvi_t[both]))) if both.any() else math.inf
        gap = (target.date - it.date).days
        rows.append(
            {
                "index": i,
                "path": str(it.path),
                "date": it.date.isoformat(),
                "day_distance": _day_distance(it.date, target.date),
                "gap_days": gap,
                "ndvi_difference": round(diff, 4),
                "same_season": (
                    _day_distance(it.date, target.date) <= SEASON_WINDOW_DAYS
                    and gap >= MIN_YEAR_GAP_DAYS
                ),
            }
        )
    same = [r for r in rows if r["same_season"]]
    pool = same or rows
    best = min(pool, key=lambda r: (r["ndvi_difference"], r["day_distance"], -r["gap_days"]))
    reason = (
        "same season of an earlier year, closest vegetation state"
        if same
        else "no scene of the same season in an earlier year: closest vegetation state "
        "(NDVI) among the earlier scenes"
    )
    return best["index"], {"reason": reason, "candidates": rows}


def _polygon_classes(
    items: list[SeriesScene], indices: list[int], features: list[dict], grid
) -> dict[int, list[str | None]]:
    """Per feature index: majority cover class on each scene of ``indices`` (None: too little
    valid data there)."""
    from rasterio.features import rasterize
    from rasterio.windows import Window, from_bounds
    from rasterio.windows import transform as window_transform

    from gis.imagery import SceneReader
    from gis.land_cover import COVER_NAMES, NEEDED_BANDS, classify

    out: dict[int, list[str | None]] = {k: [] for k in range(len(features))}
    full = Window(0, 0, grid.width, grid.height)
    windows = []
    for f in features:
        win = from_bounds(*f["geometry"].bounds, transform=grid.transform)
        c0, r0 = math.floor(win.col_off), math.floor(win.row_off)
        win = Window(
            c0,
            r0,
            math.ceil(win.col_off + win.width) - c0 + 1,
            math.ceil(win.row_off + win.height) - r0 + 1,
        ).intersection(full)
        burn = rasterize(
            [(f["geometry"], 1)],
            out_shape=(int(win.height), int(win.width)),
            transform=window_transform(win, grid.transform),
            fill=0,
            dtype="uint8",
        ).astype(bool)
        windows.append((win, burn))
    for i in indices:
        with SceneReader(items[i].scene, grid) as reader:
            for k, (win, burn) in enumerate(windows):
                n = int(burn.sum())
                if n == 0:
                    out[k].append(None)
                    continue
                values, valid = reader.read(win, NEEDED_BANDS)
                codes = classify(values, NEEDED_BANDS, valid, reader.scale)[burn]
                known = codes[codes > 0]
                if known.size < MIN_VALID_SHARE * n:
                    out[k].append(None)
                    continue
                counts = np.bincount(known, minlength=5)[1:5]
                out[k].append(COVER_NAMES[int(np.argmax(counts)) + 1])
    return out


def persistence(
    classes: list[str | None], dates: list[dt.date], to_class: str | None, min_persist: int = 2
) -> dict:
    """Judge one conversion from its majority class on each date after the reference.

    >>> d = [dt.date(2024, m, 1) for m in (4, 7, 10)]
    >>> persistence(["vegetation", "built_up", "built_up"], d, "built_up")["status"]
    'confirmed'
    >>> persistence(["built_up", "water", "built_up"], d, "built_up")["status"]
    'pending'
    >>> persistence(["built_up", "built_up", "water"], d, "built_up")["status"]
    'reverted'
    """

    def after_state(c: str) -> bool:
        return c == "built_up" if to_class == "built_up" else c != "built_up"

    known = [(d, c) for d, c in zip(dates, classes, strict=True) if c is not None]
    run: list[dt.date] = []
    for d, c in reversed(known):
        if not after_state(c):
            break
        run.append(d)
    run.reverse()
    observed = [[d.isoformat(), c] for d, c in zip(dates, classes, strict=True)]
    if not run:
        return {
            "status": "reverted",
            "change_date": None,
            "persistent_dates": 0,
            "observed": observed,
        }
    status = "confirmed" if len(run) >= min_persist else "pending"
    return {
        "status": status,
        "change_date": run[0].isoformat(),
        "persistent_dates": len(run),
        "observed": observed,
    }


def check_usable(items: list[SeriesScene]) -> dict[int, tuple]:
    """Sample every scene of a series (:func:`open_series`) on the latest scene's grid: a
    scene with no valid pixel (cloud or nodata everywhere) is marked unusable. Returns the
    NDVI samples (for :func:`choose_reference`).

    Raises
    ------
    InputFileError
        Fewer than two usable dates (naming the files), or the latest scene unusable.
    """
    target_grid = items[-1].scene.grid
    samples: dict[int, tuple] = {}
    for i, it in enumerate(items):
        values, valid, _ = read_sample(it.scene, target_grid, ("B04", "B08"), max_pixels=250_000)
        it.valid_fraction = float(valid.mean()) if valid.size else 0.0
        if not valid.any():
            it.usable = False
            it.note = "no valid pixel (cloud or nodata everywhere)"
        samples[i] = (_ndvi(values), valid)
    usable = [it for it in items if it.usable]
    if len(usable) < 2:
        bad = "; ".join(f"{it.path} ({it.date}): {it.note}" for it in items if not it.usable)
        raise InputFileError(
            f"a time series needs at least two usable dates; only "
            f"{', '.join(f'{it.path} ({it.date})' for it in usable) or 'none'} is usable ({bad})."
        )
    if not items[-1].usable:
        raise InputFileError(
            f"{items[-1].path}: the latest scene of the series has no valid "
            "pixel (cloud or nodata everywhere); leave it out."
        )
    return samples


def detect_series(
    paths: Sequence[str | Path],
    config=None,
    dates=None,
    mask_out=None,
    progress=None,
    client=None,
    min_persist: int = 2,
):
    """Detect conversions over a time series (see the module docstring).

    Returns
    -------
    gis.change.detect.DetectionResult
        The reference → target pair's result whose conversion polygons are only the confirmed
        ones (each with ``change_date``, ``persistent_dates`` and ``observed`` per date);
        ``stats['series']`` lists the scenes, the chosen pair and why, and the pending and
        reverted conversions; ``parameters['series']`` what the run was computed from.
    """
    from gis.change.detect import DetectionConfig, _count_by, detect_changes

    if min_persist < 1:
        raise InvalidValueError("--min-persist must be at least 1.")
    config = config or DetectionConfig()
    items = open_series(paths, dates)
    samples = check_usable(items)
    ref, choice = choose_reference(items, samples)
    result = detect_changes(
        items[ref].path, items[-1].path, config, mask_out=mask_out, progress=progress, client=client
    )
    later = [i for i in range(ref + 1, len(items)) if items[i].usable]
    later_dates = [items[i].date for i in later]
    conv = [f for f in result.features if f["kind"] == "conversion"]
    classes = _polygon_classes(items, later, conv, result.grid)
    kept, pending, reverted = [], [], []
    for k, f in enumerate(conv):
        verdict = persistence(classes[k], later_dates, f["to_class"], min_persist)
        f.update(
            change_date=verdict["change_date"],
            persistent_dates=verdict["persistent_dates"],
            observed=verdict["observed"],
        )
        {"confirmed": kept, "pending": pending, "reverted": reverted}[verdict["status"]].append(f)
    features = [f for f in result.features if f["kind"] != "conversion" or f in kept]
    for i, f in enumerate(features, start=1):
        f["id"] = i

    def brief(f: dict) -> dict:
        c = f["geometry"].centroid
        return {
            "area_m2": f["area_m2"],
            "from_class": f["from_class"],
            "to_class": f["to_class"],
            "x": round(c.x, 1),
            "y": round(c.y, 1),
            "observed": f["observed"],
        }

    result.features = features
    result.stats.update(
        polygons=len(features),
        changed_area_m2=round(sum(f["area_m2"] for f in features), 1),
        by_kind=_count_by(features, "kind"),
        series={
            "scenes": [
                {
                    "path": str(it.path),
                    "date": it.date.isoformat(),
                    "usable": it.usable,
                    "valid_fraction": round(it.valid_fraction, 4),
                    **({"note": it.note} if it.note else {}),
                }
                for it in items
            ],
            "reference": str(items[ref].path),
            "target": str(items[-1].path),
            "reference_date": items[ref].date.isoformat(),
            "target_date": items[-1].date.isoformat(),
            **choice,
            "dates_after_reference": len(later),
            "min_persist": min_persist,
            "confirmed": len(kept),
            "pending": [brief(f) for f in pending],
            "reverted": [brief(f) for f in reverted],
        },
    )
    result.parameters["series"] = {
        "scenes": [str(it.path) for it in items],
        "dates": [it.date.isoformat() for it in items],
        "min_persist": min_persist,
    }
    return result
