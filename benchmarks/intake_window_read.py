"""Bytes the imagery intake fetches for a commune-sized window of a Sentinel-2-sized COG.

Writes a 10,980 × 10,980 uint16 band (a full Sentinel-2 10 m tile; smooth field + noise) as a
COG (512-px blocks, DEFLATE) in a temporary folder, serves it on 127.0.0.1 with a Range-capable
HTTP server, and reads the window of a ~10 km × 10 km area through the intake's reader
(``gis.intake.stac._window`` + ``_write_window`` under the intake's GDAL HTTP options).
Prints the bytes sent, the number of range requests and the time.

    .venv/bin/python benchmarks/intake_window_read.py [--size 10980] [--area-km 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import shapely
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gis.intake.settings import IntakeSettings  # noqa: E402
from gis.intake.stac import _gdal_path, _window, _write_window, gdal_http_env  # noqa: E402
from tests.gis.intake.conftest import RangeHandler  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--area-km", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "src.tif"
        n = args.size
        transform = from_origin(600000, 2300040, 10, 10)
        with rasterio.open(
            src,
            "w",
            driver="GTiff",
            width=n,
            height=n,
            count=1,
            dtype="uint16",
            crs="EPSG:32648",
            transform=transform,
            tiled=True,
            blockxsize=512,
            blockysize=512,
        ) as dst:
            rng = np.random.default_rng(0)
            for _, win in dst.block_windows(1):
                h, w = int(win.height), int(win.width)
                block = (
                    1200 + 300 * np.sin(np.arange(w)[None, :] / 50.0) + rng.normal(0, 40, (h, w))
                )
                dst.write(block.astype("uint16"), 1, window=win)
        cog = root / "B04.tif"
        rasterio.shutil.copy(src, cog, driver="COG", BLOCKSIZE=512, COMPRESS="DEFLATE")
        src.unlink()
        size = cog.stat().st_size

        log, lock = [], threading.Lock()
        cls = type("H", (RangeHandler,), {"log_list": log, "lock": lock})
        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), lambda *a, **k: cls(*a, directory=str(root), **k)
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/B04.tif"
        # an area of area_km × area_km in the middle of the tile
        half = args.area_km * 1000 / 2
        cx, cy = 600000 + n * 5, 2300040 - n * 5
        area = shapely.box(
            *transform_bounds("EPSG:32648", "EPSG:4326", cx - half, cy - half, cx + half, cy + half)
        )
        settings = IntakeSettings(_env_file=None)
        t0 = time.perf_counter()
        with rasterio.Env(**gdal_http_env(settings)), rasterio.open(_gdal_path(url)) as ds:
            win = _window(ds, area.bounds)
            written = _write_window(ds, win, root / "out.tif", "B04", {})
        dt = time.perf_counter() - t0
        server.shutdown()
        gets = [r for r in log if r.method == "GET"]
        sent = sum(r.sent for r in gets)
        print(
            f"COG {n}x{n} px, {size / 1e6:.1f} MB; window {int(win.width)}x{int(win.height)} "
            f"px ({args.area_km:g} km square)"
        )
        print(
            f"fetched {sent / 1e6:.2f} MB ({sent / size:.1%} of the file) in {len(gets)} "
            f"range requests, {dt:.2f} s; local GeoTIFF {written / 1e6:.2f} MB"
        )


if __name__ == "__main__":
    main()
