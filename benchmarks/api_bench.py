"""OGC API benchmark: our provider vs pygeoapi's stock PostgreSQL provider vs tipg.

On a generated table of 1,000,000 parcel polygons (EPSG:5897, ~24 m squares with jittered
vertices, ~6,700 per z14 tile) in a separate database of the embedded PostGIS, each server runs
with 2 uvicorn[standard] workers and is measured in turn at concurrency 1 (keep-alive client):
items?limit=1000, a 300 m bbox (limit 100), a deep page (offset 900,000, limit 100), a single
item and a z14 vector tile. Prints p50/p95 latency, requests per second and the ratios.
With ``--rows N`` the deep page is at 90 % of N (offset 900,000 for the default million).

    .venv/bin/python benchmarks/api_bench.py [--rows 1000000] [--seconds 20] [--max-requests 300]

tipg is installed by this script in its own virtual environment (/tmp/tipg-venv) with
``~/.pyenv/versions/3.12.1/bin/python -m venv`` + ``pip install tipg``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TIPG_VENV = Path("/tmp/tipg-venv")
# the published parcel properties (the stock provider would try to serialise the second
# geometry column, geom_webmercator, and crash)
PROPERTIES = [
    "commune_code",
    "old_commune_code",
    "sheet_number",
    "parcel_number",
    "area_m2",
    "legal_area_m2",
    "land_use_code",
    "land_use_code_raw",
    "land_use_code_version",
    "land_uses",
    "owner_class",
    "address",
    "source_file",
    "imported_at",
]
CENTER_X, CENTER_Y = 590000.0, 2270000.0  # EPSG:5897, former Hà Nam
CELL = 28.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def bench_database(state_dir: Path, name: str) -> str:
    from gis.db.embedded import EmbeddedCluster

    cluster = EmbeddedCluster(state_dir)
    cluster.initialise()
    cluster.start()
    admin = cluster.url(database="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url(database=name)


def generate(url: str, rows: int) -> None:
    from gis.db import migrate

    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT to_regclass('public.parcels')").fetchone()[0]
        if have and conn.execute("SELECT count(*) FROM parcels").fetchone()[0] == rows:
            log(f"parcels already hold {rows:,} rows")
            return
    migrate.upgrade(url)
    side = math.ceil(math.sqrt(rows))
    log(f"generating {rows:,} parcels ({side} x {side} grid of {CELL:.0f} m cells)")
    t0 = time.perf_counter()
    codes = ["LUC", "LUK", "HNK", "CLN", "ONT", "ODT", "NTS", "DGT", "DTL", "SKC"]
    codes_sql = "ARRAY[" + ",".join(f"'{c}'" for c in codes) + "]"
    x0, y0 = CENTER_X - side * CELL / 2, CENTER_Y - side * CELL / 2
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE parcels CASCADE")
        conn.execute("ALTER TABLE parcels DROP CONSTRAINT IF EXISTS ck_parcels_geom_valid")
        conn.execute("DROP INDEX IF EXISTS ix_parcels_geom")
        conn.execute("SET max_parallel_workers_per_gather = 0")
        conn.execute(_insert_sql(rows, side, x0, y0, codes_sql, len(codes)))
        log(f"inserted in {time.perf_counter() - t0:.0f} s; indexing")
        conn.execute("CREATE INDEX ix_parcels_geom ON parcels USING gist (geom)")
        conn.execute("VACUUM ANALYZE parcels")
    log(f"table ready in {time.perf_counter() - t0:.0f} s")


def _insert_sql(rows: int, side: int, x0: float, y0: float, codes_sql: str, ncodes: int) -> str:
    def j(k: int) -> str:  # deterministic jitter in [-2, 2] m
        return f"((hashint4(g * 16 + {k}) & 4095) / 1023.75 - 2)"

    pts = [
        (0, 0, 1, 2),
        (12, -1, 3, 4),
        (24, 0, 5, 6),
        (24, 24, 7, 8),
        (12, 25, 9, 10),
        (0, 24, 11, 12),
    ]
    ring = ", ".join(f"ST_MakePoint(x + {dx} + {j(a)}, y + {dy} + {j(b)})" for dx, dy, a, b in pts)
    ring += f", ST_MakePoint(x + {j(1)}, y + {j(2)})"
    return f"""
        INSERT INTO parcels (id, commune_code, sheet_number, parcel_number, area_m2, legal_area_m2,
            land_use_code, land_use_code_raw, land_use_code_version, address, geom)
        SELECT g, ((g / 10000) % 100 + 13000)::text, ((g / 500) % 200 + 1)::text,
               (g % 500 + 1)::text, round(ST_Area(p)::numeric, 1), round(ST_Area(p)::numeric),
               c, c, '2024', 'Thôn ' || (g % 37 + 1), ST_Multi(p)
        FROM (
          SELECT g, ({codes_sql})[1 + (hashint4(g) & 1023) % {ncodes}] AS c,
                 ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[{ring}])), 5897) AS p
          FROM (SELECT g, {x0} + ((g - 1) % {side}) * {CELL} AS x,
                       {y0} + ((g - 1) / {side}) * {CELL} AS y
                FROM generate_series(1, {rows}) g) s
        ) q
    """


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=60).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def start(cmd: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    fh = open(log_path, "w")  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def ensure_tipg() -> Path:
    python = TIPG_VENV / "bin" / "python"
    if (
        not (TIPG_VENV / "bin" / "uvicorn").exists()
        or subprocess.run([str(python), "-c", "import tipg"], capture_output=True).returncode
    ):
        log("installing tipg into /tmp/tipg-venv")
        base = Path.home() / ".pyenv/versions/3.12.1/bin/python"
        subprocess.run([str(base), "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run(
            [str(TIPG_VENV / "bin/pip"), "install", "-q", "tipg", "uvicorn[standard]"], check=True
        )
    return TIPG_VENV / "bin" / "uvicorn"


def stock_config(url: str, port: int, workdir: Path) -> tuple[Path, Path]:
    import yaml

    parts = urlsplit(url)
    conn = {
        "host": parts.hostname,
        "port": parts.port,
        "dbname": parts.path.lstrip("/"),
        "user": parts.username,
        "password": parts.password,
        "search_path": ["public"],
    }
    crs = [f"http://www.opengis.net/def/crs/EPSG/0/{c}" for c in (4326, 5897, 3857)]
    crs.insert(0, "http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    cfg = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": 10000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OSM"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "bench",
                "description": "bench",
                "keywords": ["x"],
                "keywords_type": "theme",
                "terms_of_service": "x",
                "url": "http://x",
            },
            "license": {"name": "x", "url": "http://x"},
            "provider": {"name": "x", "url": "http://x"},
            "contact": {
                "name": "x",
                "position": "x",
                "address": "x",
                "city": "x",
                "stateorprovince": "x",
                "postalcode": "x",
                "country": "x",
                "phone": "x",
                "fax": "x",
                "email": "x",
                "url": "x",
                "hours": "x",
                "instructions": "x",
                "role": "pointOfContact",
            },
        },
        "resources": {
            "parcels": {
                "type": "collection",
                "title": "parcels",
                "description": "parcels",
                "keywords": ["p"],
                "extents": {
                    "spatial": {
                        "bbox": [105.5, 20.3, 106.2, 20.8],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                    }
                },
                "providers": [
                    {
                        "type": "feature",
                        "name": "PostgreSQL",
                        "data": conn,
                        "id_field": "id",
                        "table": "parcels",
                        "geom_field": "geom",
                        "crs": crs,
                        "properties": PROPERTIES,
                        "storage_crs": "http://www.opengis.net/def/crs/EPSG/0/5897",
                    },
                    {
                        "type": "tile",
                        "name": "MVT-postgresql",
                        "data": conn,
                        "id_field": "id",
                        "table": "parcels",
                        "geom_field": "geom",
                        "storage_crs": "http://www.opengis.net/def/crs/EPSG/0/5897",
                        "options": {"zoom": {"min": 0, "max": 22}},
                        "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"},
                    },
                ],
            }
        },
    }
    cfg_path = workdir / "stock.yml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    oas_path = workdir / "stock-openapi.yml"
    env = {**os.environ, "PYGEOAPI_CONFIG": str(cfg_path), "PYGEOAPI_OPENAPI": str(oas_path)}
    subprocess.run(
        [
            str(REPO / ".venv/bin/pygeoapi"),
            "openapi",
            "generate",
            str(cfg_path),
            "--output-file",
            str(oas_path),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    return cfg_path, oas_path


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def request_sets(url: str, rows: int, collection: str, kind: str) -> dict[str, list[str]]:
    """The URLs each server is asked for (same places, ids and tiles for all)."""
    from pyproj import Transformer

    rnd = random.Random(42)
    side = math.ceil(math.sqrt(rows))
    to_wgs = Transformer.from_crs(5897, 4326, always_xy=True)
    half = side * CELL / 2
    bboxes, tiles = [], []
    for _ in range(40):
        x = CENTER_X + rnd.uniform(-half * 0.8, half * 0.8)
        y = CENTER_Y + rnd.uniform(-half * 0.8, half * 0.8)
        lon1, lat1 = to_wgs.transform(x - 150, y - 150)
        lon2, lat2 = to_wgs.transform(x + 150, y + 150)
        bboxes.append(f"{lon1:.6f},{lat1:.6f},{lon2:.6f},{lat2:.6f}")
    for _ in range(20):
        x = CENTER_X + rnd.uniform(-half * 0.5, half * 0.5)
        y = CENTER_Y + rnd.uniform(-half * 0.5, half * 0.5)
        lon, lat = to_wgs.transform(x, y)
        tx, ty = lonlat_to_tile(lon, lat, 14)
        tiles.append((tx, ty))
    ids = [rnd.randint(1, rows) for _ in range(200)]
    deep = rows * 9 // 10  # 900,000 of the default 1,000,000
    base = f"{url}/collections/{collection}"
    fmt = "&f=json" if kind == "stock" else ""
    tile_suffix = "?f=mvt" if kind != "tipg" else ""
    return {
        "items?limit=1000": [f"{base}/items?limit=1000{fmt}"],
        "bbox 300 m, limit 100": [f"{base}/items?bbox={b}&limit=100{fmt}" for b in bboxes],
        f"deep page offset {deep:,}": [
            f"{base}/items?offset={deep + 100 * i}&limit=100{fmt}" for i in range(20)
        ],
        "single item": [f"{base}/items/{i}{'?f=json' if kind == 'stock' else ''}" for i in ids],
        # OGC order is {tileMatrix}/{tileRow}/{tileCol} (z/y/x); tipg routes z/x/y
        "z14 vector tile": [
            f"{base}/tiles/WebMercatorQuad/14/{tx}/{ty}"
            if kind == "tipg"
            else f"{base}/tiles/WebMercatorQuad/14/{ty}/{tx}{tile_suffix}"
            for tx, ty in tiles
        ],
    }


def measure(
    urls: list[str], seconds: float, max_requests: int, headers: dict | None = None
) -> dict:
    lat: list[float] = []
    sizes: list[int] = []
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=300, headers=headers or {}) as client:
        client.get(urls[0])  # warm-up
        client.get(urls[-1])
        t_start = time.perf_counter()
        i = 0
        while i < max_requests and (time.perf_counter() - t_start < seconds or i < 3):
            t0 = time.perf_counter()
            r = client.get(urls[i % len(urls)])
            body = r.content
            lat.append(time.perf_counter() - t0)
            sizes.append(len(body))
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            i += 1
        total = time.perf_counter() - t_start
    lat_ms = sorted(x * 1000 for x in lat)
    p95 = lat_ms[min(len(lat_ms) - 1, int(math.ceil(0.95 * len(lat_ms))) - 1)]
    return {
        "n": len(lat),
        "p50": statistics.median(lat_ms),
        "p95": p95,
        "rps": len(lat) / total,
        "bytes": int(statistics.median(sizes)),
        "statuses": statuses,
    }


def check_counts(url_items: str, kind: str) -> str:
    r = httpx.get(url_items, timeout=300)
    doc = r.json()
    return (
        f"{kind}: {len(doc.get('features', []))} features, numberMatched={doc.get('numberMatched')}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=20.0, help="time budget per request type")
    ap.add_argument("--max-requests", type=int, default=300)
    ap.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("IOC_STATE_DIR", REPO / ".state"))
    )
    ap.add_argument("--database", default="ioc_bench")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--only", nargs="*", choices=["ours", "stock", "tipg"], default=["ours", "stock", "tipg"]
    )
    args = ap.parse_args()

    url = bench_database(args.state_dir, args.database)
    generate(url, args.rows)
    workdir = Path(tempfile.mkdtemp(prefix="api-bench-"))
    results: dict[str, dict[str, dict]] = {}
    uvicorn = str(REPO / ".venv/bin/uvicorn")
    common = [
        "--host",
        "127.0.0.1",
        "--workers",
        str(args.workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    for kind in args.only:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        if kind == "ours":
            env = {"IOC_DATABASE_URL": url, "IOC_API_BASE_URL": base, "IOC_API_MAX_ITEMS": "10000"}
            cmd = [
                uvicorn,
                "--factory",
                "api.app:app_from_environment",
                "--port",
                str(port),
                *common,
            ]
            collection = "parcels"
        elif kind == "stock":
            cfg, oas = stock_config(url, port, workdir)
            env = {"PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(oas)}
            cmd = [uvicorn, "pygeoapi.starlette_app:APP", "--port", str(port), *common]
            collection = "parcels"
        else:
            tipg_uvicorn = ensure_tipg()
            env = {
                "DATABASE_URL": url,
                "TIPG_DB_SCHEMAS": '["public"]',
                "TIPG_MAX_FEATURES_PER_QUERY": "10000",
                "TIPG_DEFAULT_FEATURES_LIMIT": "10",
            }
            cmd = [str(tipg_uvicorn), "tipg.main:app", "--port", str(port), *common]
            collection = "public.parcels"
        log(f"starting {kind}: {' '.join(cmd[:3])} ...")
        proc = start(cmd, env, workdir / f"{kind}.log")
        try:
            wait_up(f"{base}/collections/{collection}", proc)
            log(
                check_counts(
                    f"{base}/collections/{collection}/items?limit=1000"
                    + ("&f=json" if kind == "stock" else ""),
                    kind,
                )
            )
            results[kind] = {}
            for name, urls in request_sets(base, args.rows, collection, kind).items():
                res = measure(urls, args.seconds, args.max_requests)
                bad = {k: v for k, v in res["statuses"].items() if k not in (200, 204)}
                if "tile" in name and res["bytes"] < 1000:
                    bad["tiny tiles"] = res["bytes"]
                if bad:
                    raise SystemExit(
                        f"{kind} {name}: unexpected statuses {bad}; see {workdir}/{kind}.log"
                    )
                results[kind][name] = res
                log(
                    f"{kind:5s} {name:26s} p50 {res['p50']:8.1f} ms  p95 {res['p95']:8.1f} ms  "
                    f"{res['rps']:7.1f} req/s  ({res['n']} requests, {res['bytes']:,} B, {res['statuses']})"
                )
            if kind == "ours":
                # what a client following rel=next links gets at depth: the keyset cursor
                deep = args.rows * 9 // 10
                r = httpx.get(
                    f"{base}/collections/{collection}/items?offset={deep}&limit=100", timeout=120
                )
                nxt = [ln["href"] for ln in r.json()["links"] if ln["rel"] == "next"]
                if nxt:
                    res = measure(nxt, args.seconds, args.max_requests)
                    results[kind]["deep page via rel=next (keyset)"] = res
                    log(
                        f"ours  deep page via rel=next       p50 {res['p50']:8.1f} ms  p95 {res['p95']:8.1f} ms  {res['rps']:7.1f} req/s"
                    )
        finally:
            stop(proc)
    names = list(dict.fromkeys(n for r in results.values() for n in r))
    print()
    print(
        f"## {args.rows:,} parcels (EPSG:5897), {args.workers} uvicorn workers each, concurrency 1"
    )
    print(
        "| request | "
        + " | ".join(f"{k} p50 ms / p95 ms / req/s" for k in results)
        + " | ours÷stock (rps) | ours÷tipg (rps) |"
    )
    print("|---|" + "---|" * (len(results) + 2))
    for name in names:
        cells = []
        for k in results:
            r = results[k].get(name)
            cells.append(f"{r['p50']:.1f} / {r['p95']:.1f} / {r['rps']:.1f}" if r else "–")
        ours = results.get("ours", {}).get(name) or results.get("ours", {}).get(
            "z14 vector tile" if "z14" in name else name
        )
        ratio = []
        for other in ("stock", "tipg"):
            o = results.get(other, {}).get(name)
            ratio.append(f"{ours['rps'] / o['rps']:.1f}×" if ours and o else "–")
        print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratio) + " |")
    out = workdir / "results.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nraw results: {out}; server logs in {workdir}")


if __name__ == "__main__":
    main()
