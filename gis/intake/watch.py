"""The watch folder: scenes delivered by hand (a GeoTIFF, or a folder of per-band GeoTIFFs, as
``ioc land detect`` accepts them).

Conventions (docs/imagery-intake.md):

* a delivery still being written is left alone: names ending in ``.partial``, ``.part`` or
  ``.tmp`` and hidden names (``.name``) are never touched, and a delivery is taken only when its
  files' sizes and modification times are unchanged since the previous poll, or when its newest
  file is older than ``IOC_INTAKE_WATCH_SETTLE_S`` (copy as ``scene.tif.partial`` and rename
  when done to be taken at the next poll without waiting);
* a valid scene is recorded and moved to ``processed/``; a bad one is moved to ``rejected/``
  with ``<name>.reason.txt`` next to it saying what is wrong. Nothing is ever deleted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.enums import Resampling
from rasterio.errors import RasterioError

from gis.errors import IocError
from gis.imagery import BANDS_10M, SCL_MASKED, Scene, open_scene
from gis.intake.settings import IntakeSettings

log = logging.getLogger("gis.intake.watch")

PROCESSED, REJECTED = "processed", "rejected"
STATE_FILE = ".ioc-intake-watch.json"
_WRITING_SUFFIXES = (".partial", ".part", ".tmp", ".crdownload")
_RASTER_SUFFIXES = (".tif", ".tiff")


@dataclass
class Delivery:
    path: Path
    signature: str
    newest_mtime: float


@dataclass
class Checked:
    scene: Scene
    usable_share: float | None
    footprint: object


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def _being_written(path: Path) -> bool:
    return any(
        p.name.lower().endswith(_WRITING_SUFFIXES) or p.name.startswith(".")
        for p in [path, *(_files(path) if path.is_dir() else [])]
    )


def deliveries(watch_dir: Path) -> list[Delivery]:
    """Deliveries in the watch folder (not processed/, rejected/ or hidden names)."""
    out = []
    for entry in sorted(watch_dir.iterdir()):
        if entry.name in (PROCESSED, REJECTED) or entry.name.startswith("."):
            continue
        if entry.name.endswith(".reason.txt"):
            continue
        files = _files(entry)
        stats = []
        for f in files:
            try:
                st = f.stat()
            except FileNotFoundError:  # moved while we looked
                continue
            stats.append((str(f.relative_to(watch_dir)), st.st_size, st.st_mtime_ns))
        sig = hashlib.sha1(json.dumps(stats).encode()).hexdigest()
        newest = max((s[2] for s in stats), default=0) / 1e9
        out.append(Delivery(entry, sig, newest))
    return out


def _load_state(watch_dir: Path) -> dict:
    try:
        return json.loads((watch_dir / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _save_state(watch_dir: Path, state: dict) -> None:
    """Remember the deliveries waiting for a second look; no file when none is waiting."""
    if not state:
        (watch_dir / STATE_FILE).unlink(missing_ok=True)
        return
    tmp = watch_dir / f"{STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, watch_dir / STATE_FILE)


def ready(
    watch_dir: Path, settings: IntakeSettings, now: float | None = None
) -> tuple[list[Delivery], list[Delivery]]:
    """(deliveries ready to take, deliveries left alone because they may still be written).

    Remembers each delivery's signature in ``.ioc-intake-watch.json`` for the next poll.
    """
    now = time.time() if now is None else now
    state = _load_state(watch_dir)
    take, wait, new_state = [], [], {}
    for d in deliveries(watch_dir):
        if _being_written(d.path):
            wait.append(d)
            continue
        settled = now - d.newest_mtime >= settings.watch_settle_s
        if settled or state.get(d.path.name) == d.signature:
            take.append(d)
        else:
            wait.append(d)
            new_state[d.path.name] = d.signature
    _save_state(watch_dir, new_state)
    return take, wait


def _verify_readable(scene: Scene) -> None:
    """Read every block of every band once (a truncated file often opens and fails later)."""
    paths = {src.path for src in scene.bands.values()}
    if scene.scl is not None:
        paths.add(scene.scl.path)
    for p in sorted(paths):
        try:
            with rasterio.open(p) as ds:
                for _, window in ds.block_windows(1):
                    ds.read(window=window)
        except (RasterioError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise IocError(
                f"{p.name} cannot be read to the end (truncated or corrupt: {first})"
            ) from exc


def _scene_usable_share(scene: Scene) -> float | None:
    if scene.scl is None:
        return None
    with rasterio.open(scene.scl.path) as ds:
        f = max(1, int(max(ds.width, ds.height) / 1000))
        scl = ds.read(
            scene.scl.index,
            out_shape=(ds.height // f or 1, ds.width // f or 1),
            resampling=Resampling.nearest,
        )
    return float((~np.isin(scl, SCL_MASKED)).mean())


def check(path: Path, settings: IntakeSettings) -> Checked:
    """Open and verify a delivery as a scene; raise IocError with one sentence when it is bad."""
    if path.is_file() and path.suffix.lower() not in _RASTER_SUFFIXES:
        raise IocError(f"{path.name} is not a GeoTIFF (.tif/.tiff) nor a folder of band files")
    scene = open_scene(path)
    missing = [b for b in BANDS_10M if b not in scene.bands]
    if missing:
        raise IocError(
            f"{path.name} lacks the 10 m band(s) {', '.join(missing)} that change detection needs"
        )
    if scene.acquired_at is None:
        raise IocError(
            f"{path.name}: acquisition date unknown; put it in the name "
            "(…_20250418…) or an ACQUISITION_DATE tag"
        )
    _verify_readable(scene)
    share = _scene_usable_share(scene)
    if share is not None and share < settings.min_usable_share:
        raise IocError(
            f"{path.name}: only {share:.0%} of the scene is usable (cloud, shadow or "
            f"no data in its SCL band); at least {settings.min_usable_share:.0%} is "
            "needed"
        )
    footprint = shapely.Polygon(scene.footprint_lonlat())
    return Checked(scene, share, footprint)


def _free_name(folder: Path, name: str) -> Path:
    dst = folder / name
    n = 2
    while dst.exists() or (folder / f"{dst.name}.reason.txt").exists():
        stem, dot, suffix = name.partition(".")
        dst = folder / (f"{stem}-{n}{dot}{suffix}")
        n += 1
    return dst


def move_processed(path: Path, watch_dir: Path) -> Path:
    folder = watch_dir / PROCESSED
    folder.mkdir(exist_ok=True)
    dst = _free_name(folder, path.name)
    shutil.move(str(path), dst)
    return dst


def move_rejected(path: Path, watch_dir: Path, reason: str) -> Path:
    """Move to rejected/ and write ``<name>.reason.txt`` beside it (reason file first)."""
    folder = watch_dir / REJECTED
    folder.mkdir(exist_ok=True)
    dst = _free_name(folder, path.name)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    (folder / f"{dst.name}.reason.txt").write_text(
        f"{reason}\n(rejected {stamp})\n", encoding="utf-8"
    )
    shutil.move(str(path), dst)
    return dst


def item_id(delivery: Delivery) -> str:
    """A delivery's id in ``imagery_intake``: its name and a fingerprint of its files."""
    return f"{delivery.path.name}@{delivery.signature[:12]}"
