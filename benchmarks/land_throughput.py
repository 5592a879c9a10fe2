"""Throughput and peak memory of change detection on a Sentinel-2-tile-sized pair.

Generates (once) two 10,980 × 10,980-pixel, 10-band uint16 GeoTIFFs (a patchwork landscape
with noise; the later one with changed blocks), then runs ``detect_changes`` — the code behind
``ioc land detect BEFORE AFTER --mask-out ... --vector-out ...`` — in a fresh process and reports
wall time, megapixels per second and that process's peak resident memory (ru_maxrss).

    .venv/bin/python benchmarks/land_throughput.py                    # CNN, full tile
    .venv/bin/python benchmarks/land_throughput.py --size 2048 --method cva
    .venv/bin/python benchmarks/land_throughput.py --no-evidence     # detection alone

By default the same process then does what storing the run adds (issue 14, ``gis.evidence``):
the COG of each scene (B02/B03/B04/B08, deflate, overviews, validated; its stretch) and the
before/after chips (two styles each, 384 px PNG written to disk) around ``--chips`` change
polygons standing in for alerted parcels (no database: the chip cost per alert is what
matters; the run's real alert count multiplies it).

The generated pair (2 × 2.4 GB) is kept in --workdir (default .state/bench_tile) for reruns.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPECTRA = np.array(
    [
        [350, 700, 400, 1100, 2600, 3200, 3500, 3600, 2000, 1000],  # vegetation
        [1300, 1450, 1550, 1650, 1750, 1850, 1950, 2000, 2300, 2100],  # built-up
        [600, 650, 450, 400, 350, 330, 300, 290, 150, 100],  # water
        [1100, 1400, 1700, 1900, 2100, 2250, 2350, 2450, 3000, 2500],  # bare
    ],
    dtype=np.float32,
)


def generate(path: Path, size: int, changed: bool, block: int = 512) -> None:
    """Write one image strip by strip (bounded memory)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from gis.imagery import MODEL_BANDS

    land = np.random.default_rng(7)
    cells = -(-size // 20)
    cover_cells = land.choice(4, size=(cells, cells), p=[0.6, 0.15, 0.1, 0.15])
    if changed:
        flip = land.random((cells, cells)) < 0.02
        cover_cells = np.where(flip, 1, cover_cells)  # 2 % of 200 m cells built over
    noise = np.random.default_rng(11 if changed else 10)
    tmp = path.with_name(path.name + ".tmp")
    with rasterio.open(
        tmp,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=10,
        dtype="uint16",
        crs="EPSG:32648",
        transform=from_origin(500000, 2300000, 10, 10),
        nodata=0,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        BIGTIFF="YES",
    ) as dst:
        for i, b in enumerate(MODEL_BANDS, start=1):
            dst.set_band_description(i, b)
        for row in range(0, size, block):
            h = min(block, size - row)
            rows = (np.arange(row, row + h) // 20)[:, None]
            cols = (np.arange(size) // 20)[None, :]
            cover = cover_cells[rows, cols]
            img = SPECTRA[cover].transpose(2, 0, 1)
            img = img * (1 + 0.03 * noise.standard_normal(img.shape, dtype=np.float32))
            dst.write(np.clip(img, 1, 10000).astype(np.uint16), window=Window(0, row, size, h))
    os.replace(tmp, path)


def make_evidence(res, out: Path, chips: int) -> dict:
    """COGs of both scenes and chips around ``chips`` change polygons (gis.evidence)."""
    import shutil

    from rio_tiler.io import Reader

    from gis.change.store import scene_fingerprint
    from gis.evidence import render_chips, write_scene_cog

    def cpu() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    c0 = cpu()
    state = out / "evidence_state"
    shutil.rmtree(state, ignore_errors=True)  # measure writing the COGs, not reusing them
    t0 = time.perf_counter()
    t_hash = 0.0
    cogs = []
    for scene in (res.before, res.after):
        th = time.perf_counter()
        fp = scene_fingerprint(scene, ["B02", "B03", "B04", "B08"])
        t_hash += time.perf_counter() - th
        cogs.append(write_scene_cog(scene, fp, state))
    t_cog = time.perf_counter() - t0 - t_hash
    c_cog = cpu() - c0
    polys = sorted((f["geometry"] for f in res.features), key=lambda g: -g.area)[:chips]
    t1 = time.perf_counter()
    n = 0
    folder = state / "chips"
    folder.mkdir(parents=True, exist_ok=True)
    for cog in cogs:
        with Reader(str(cog.path)) as src:
            for i, poly in enumerate(polys):
                for style, png, _ in render_chips(src, cog.bands, cog.stretch, poly, [poly]):
                    (folder / f"{i}-{cog.path.stem[:8]}-{style}.png").write_bytes(png)
                    n += 1
    t_chips = time.perf_counter() - t1
    c_chips = cpu() - c0 - c_cog
    cog_mb = sum(c.path.stat().st_size for c in cogs) / 1e6
    return {
        "cog_s": round(t_cog, 1),
        "cog_hash_s": round(t_hash, 1),
        "cog_mb": round(cog_mb, 1),
        "chip_alerts": len(polys),
        "chip_files": n,
        "chips_s": round(t_chips, 1),
        "chip_ms_per_alert": round(1000 * t_chips / max(len(polys), 1), 1),
        "cog_cpu_s": round(c_cog, 1),
        "chips_cpu_s": round(c_chips, 1),
        "chip_cpu_ms_per_alert": round(1000 * c_chips / max(len(polys), 1), 1),
    }


def run_detection(
    before: Path, after: Path, method: str, tile: int, out: Path, chips: int = 500
) -> dict:
    """In this (fresh) process: detect, write mask and vectors, report time and peak RSS."""
    from gis.change.detect import DetectionConfig, detect_changes
    from gis.cli_land import write_geojson

    t0 = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 30 or done == total:
            last[0] = now
            print(f"  {done}/{total} tiles, {now - t0:.0f} s", file=sys.stderr, flush=True)

    res = detect_changes(
        before,
        after,
        DetectionConfig(method=method, tile=tile),
        mask_out=out / "mask.tif",
        progress=progress,
    )
    write_geojson(res, out / "changes.geojson")
    t_detect = time.perf_counter() - t0
    evidence = {}
    if chips >= 0:
        evidence = make_evidence(res, out, chips)
    wall = time.perf_counter() - t0
    px = res.grid.width * res.grid.height
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "method": method,
        "model_version": res.model_version,
        "width": res.grid.width,
        "height": res.grid.height,
        "bands": 10,
        "tile": tile,
        "wall_s": round(wall, 1),
        "megapixels_per_s": round(px / 1e6 / wall, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(cpu, 1),
        "megapixels_per_cpu_s": round(px / 1e6 / cpu, 3),
        "polygons": len(res.features),
        "timings": res.timings,
        "detect_s": round(t_detect, 1),
        "evidence": evidence,
        "cpu_count": os.cpu_count(),
        "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--method", choices=["cnn", "gbm", "cva"], default="cnn")
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--workdir", type=Path, default=ROOT / ".state" / "bench_tile")
    ap.add_argument("--generate-only", action="store_true", help="only make the input pair")
    ap.add_argument(
        "--chips",
        type=int,
        default=500,
        help="alerts (largest change polygons) to make chips for (default 500)",
    )
    ap.add_argument("--no-evidence", action="store_true", help="detection alone: no COGs, no chips")
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    before = args.workdir / f"before_{args.size}.tif"
    after = args.workdir / f"after_{args.size}.tif"
    if args._child:
        chips = -1 if args.no_evidence else args.chips
        print(json.dumps(run_detection(before, after, args.method, args.tile, args.workdir, chips)))
        return 0
    for path, changed in ((before, False), (after, True)):
        if not path.exists():
            t = time.perf_counter()
            generate(path, args.size, changed)
            print(f"generated {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    if args.generate_only:
        return 0
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--_child",
            "--size",
            str(args.size),
            "--method",
            args.method,
            "--tile",
            str(args.tile),
            "--workdir",
            str(args.workdir),
            "--chips",
            str(args.chips),
        ]
        + (["--no-evidence"] if args.no_evidence else []),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"{fig['width']} x {fig['height']} px, 10 bands, two dates, method {fig['method']} "
        f"({fig['model_version']}): {fig['wall_s']} s wall, {fig['megapixels_per_s']} Mpx/s, "
        f"peak memory {fig['peak_rss_mb']} MB (ru_maxrss of the detecting process), "
        f"{fig['polygons']} polygons; {fig['cpu_s']} CPU-s ({fig['megapixels_per_cpu_s']} Mpx "
        f"per CPU-second); load average at end {fig['load_avg_1min_at_end']} "
        f"on {fig['cpu_count']} CPUs (other processes share them)"
    )
    ev = fig.get("evidence")
    if ev:
        print(
            f"  of which detection {fig['detect_s']} s; COGs of both scenes {ev['cog_s']} s "
            f"({ev['cog_mb']} MB; + {ev['cog_hash_s']} s hashing, done once by store_run "
            f"anyway); chips for {ev['chip_alerts']} alerts ({ev['chip_files']} PNG) "
            f"{ev['chips_s']} s = {ev['chip_ms_per_alert']} ms per alert; CPU: COGs "
            f"{ev['cog_cpu_s']} CPU-s (GDAL threads included), chips "
            f"{ev['chip_cpu_ms_per_alert']} CPU-ms per alert"
        )
    print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
