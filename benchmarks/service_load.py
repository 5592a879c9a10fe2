"""Load held by the served API: many concurrent clients for a fixed time on mixed requests.

By default the script brings up its own embedded PostGIS in a state folder of its own
(``--state-dir``, default /tmp/ioc-load-state), loads the demo data with the same command the
demo uses (``ioc demo --no-serve``; skipped when the folder already holds it), serves the API
with several uvicorn workers (``ioc serve --workers N``) on a free port of 127.0.0.1, and runs
``--clients`` concurrent keep-alive clients for ``--seconds`` seconds. Each client loops over a
weighted mix drawn from the demo data:

* items  (35 %): ``/collections/{parcels,articles,parcel-alerts,admin-units}/items?limit=50``
* bbox   (30 %): ``/collections/parcels/items?bbox=<random box inside the parcels>&limit=100``
* tiles  (25 %): ``/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}`` at z 13-16 over
  the parcels
* digest (10 %): ``/digest/{latest day of news}?f=json``

It also reads the server's own ``/metrics`` before and after: ``server_counted`` is what the
workers counted together (by status), a check of the multiprocess metrics under load.

Any status other than 200/204 (and 404 for an empty tile) or a transport error counts as an
error. Prints requests/s, p50/p95/p99 latency (overall and per kind) and the errors.

    nice -n 10 .venv/bin/python benchmarks/service_load.py [--clients 200] [--seconds 60]
        [--workers 4] [--url http://127.0.0.1:PORT] [--json OUT.json] [--keep]

``--url`` measures a server already running (127.0.0.1 only; the demo data must be loaded in
its database, and ``--database-url`` tells where to read the request mix from).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MAX_SECONDS, MAX_CLIENTS = 600, 2000
WEIGHTS = {"items": 35, "bbox": 30, "tiles": 25, "digest": 10}
OK = {200, 204}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ioc(
    *args: str, env: dict[str, str], check: bool = True, capture: bool = False
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "ioc.cli", *args],
        cwd=REPO,
        env=env,
        check=check,
        text=True,
        capture_output=capture,
    )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_loaded(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            if conn.execute("SELECT to_regclass('public.articles')").fetchone()[0] is None:
                return False
            arts = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
            parcels = conn.execute("SELECT count(*) FROM parcels").fetchone()[0]
            return arts > 0 and parcels > 0
    except psycopg.Error:
        return False


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def request_mix(database_url: str, seed: int = 7) -> dict[str, list[str]]:
    """The URLs of each kind, from what the database holds."""
    rnd = random.Random(seed)
    with psycopg.connect(database_url) as conn:
        ext = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(ST_Transform(geom, 4326)) AS e FROM parcels) x"
        ).fetchone()
        day = conn.execute(
            "SELECT (max(COALESCE(published_at, fetched_at)) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date "
            "FROM articles"
        ).fetchone()[0]
    if ext is None or ext[0] is None or day is None:
        raise SystemExit("the database holds no parcels or no articles: load the demo data first")
    x0, y0, x1, y1 = ext
    items = [
        f"/collections/{c}/items?limit=50&f=json"
        for c in ("parcels", "articles", "parcel-alerts", "admin-units")
    ]
    bbox = []
    for _ in range(200):
        w, h = (x1 - x0) * rnd.uniform(0.02, 0.2), (y1 - y0) * rnd.uniform(0.02, 0.2)
        bx, by = rnd.uniform(x0, x1 - w), rnd.uniform(y0, y1 - h)
        bbox.append(
            f"/collections/parcels/items?bbox={bx:.6f},{by:.6f},{bx + w:.6f},{by + h:.6f}&limit=100&f=json"
        )
    tiles = []
    for z in (13, 14, 15, 16):
        tx0, ty1 = lonlat_to_tile(x0, y0, z)
        tx1, ty0 = lonlat_to_tile(x1, y1, z)
        cells = [(x, y) for x in range(tx0, tx1 + 1) for y in range(ty0, ty1 + 1)]
        rnd.shuffle(cells)
        tiles += [f"/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}" for x, y in cells[:60]]
    digest = [f"/digest/{day.isoformat()}?f=json"]
    return {"items": items, "bbox": bbox, "tiles": tiles, "digest": digest}


async def load(
    base: str,
    mix: dict[str, list[str]],
    clients: int,
    seconds: float,
    max_requests: int,
    timeout: float,
) -> dict:
    import aiohttp

    kinds = list(WEIGHTS)
    weights = [WEIGHTS[k] for k in kinds]
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    done = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients, limit_per_host=clients, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async def client(i: int, session) -> None:
        nonlocal done
        rnd = random.Random(i)
        while time.perf_counter() < deadline and done < max_requests:
            kind = rnd.choices(kinds, weights)[0]
            path = rnd.choice(mix[kind])
            done += 1
            t0 = time.perf_counter()
            try:
                async with session.get(base + path) as r:
                    await r.read()
                    status = r.status
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                errors[f"{kind}: {type(exc).__name__}"] += 1
                continue
            latencies[kind].append(time.perf_counter() - t0)
            statuses[status] += 1
            if status not in OK and not (kind == "tiles" and status == 404):
                errors[f"{kind}: HTTP {status}"] += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        await asyncio.gather(*(client(i, session) for i in range(clients)))
    elapsed = time.perf_counter() - started

    def q(values: list[float], p: float) -> float:
        if not values:
            return float("nan")
        values = sorted(values)
        return values[min(len(values) - 1, int(p * len(values)))] * 1000

    every = [v for vs in latencies.values() for v in vs]
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(every) + sum(n for k, n in errors.items() if "HTTP" not in k),
        "requests_per_second": round(len(every) / elapsed, 1),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "statuses": dict(statuses),
        "p50_ms": round(q(every, 0.50), 1),
        "p95_ms": round(q(every, 0.95), 1),
        "p99_ms": round(q(every, 0.99), 1),
        "mean_ms": round(statistics.fmean(every) * 1000, 1) if every else None,
        "by_kind": {
            k: {"requests": len(v), "p50_ms": round(q(v, 0.5), 1), "p95_ms": round(q(v, 0.95), 1)}
            for k, v in sorted(latencies.items())
        },
    }


def server_count(base: str) -> dict[str, float]:
    """Requests the server itself counted (its /metrics, every worker), by status."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", timeout=30).text
    out: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "ioc_http_requests_total":
                out[s.labels["status"]] += s.value
    return out


def wait_up(url: str, proc: subprocess.Popen | None, timeout: float = 240) -> None:
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=4, help="uvicorn workers of the served API")
    ap.add_argument(
        "--max-requests", type=int, default=500_000, help="stop after this many requests"
    )
    ap.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    ap.add_argument("--url", help="an API already running on 127.0.0.1 (then --database-url too)")
    ap.add_argument("--database-url", help="its database (for the request mix)")
    ap.add_argument("--state-dir", type=Path, default=Path("/tmp/ioc-load-state"))
    ap.add_argument("--keep", action="store_true", help="leave the embedded database running")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        raise SystemExit(f"--clients must be 1..{MAX_CLIENTS} and --seconds 0..{MAX_SECONDS}")

    server = None
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("IOC_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(IOC_STATE_DIR=str(args.state_dir), PYTHONWARNINGS="ignore")
    started_db = False
    try:
        if args.url:
            host = urlsplit(args.url).hostname
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise SystemExit("--url must be a server on this machine (127.0.0.1)")
            if not args.database_url:
                raise SystemExit("--url needs --database-url (where the request mix is read from)")
            base, database_url = args.url.rstrip("/"), args.database_url
        else:
            args.state_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(args.state_dir, 0o755)
            log(f"database in {args.state_dir}")
            ioc("db", "up", env=env)
            started_db = True
            database_url = ioc("db", "url", env=env, capture=True).stdout.strip()
            if demo_loaded(database_url):
                log("demo data already loaded")
            else:
                log("loading the demo data (ioc demo --no-serve)")
                t0 = time.perf_counter()
                ioc("demo", "--no-serve", env=env)
                log(f"demo data loaded in {time.perf_counter() - t0:.0f} s")
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            log(f"serving with {args.workers} workers on {base}")
            logf = open(args.state_dir / "serve.log", "w")  # noqa: SIM115 - handed to the child
            server = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "ioc.cli",
                    "serve",
                    "--workers",
                    str(args.workers),
                    "--port",
                    str(port),
                ],
                cwd=REPO,
                env={**env, "IOC_DATABASE_URL": database_url},
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_up(f"{base}/healthz", server)
        import httpx

        ready = httpx.get(f"{base}/readyz", timeout=30)
        log(f"/readyz: {ready.status_code} {ready.json().get('reasons') or ''}")
        mix = request_mix(database_url)
        log(f"warm-up, then {args.clients} clients for {args.seconds:.0f} s")
        asyncio.run(load(base, mix, min(args.clients, 20), 3.0, 2000, args.timeout))
        counted = server_count(base)
        result = asyncio.run(
            load(base, mix, args.clients, args.seconds, args.max_requests, args.timeout)
        )
        after = server_count(base)
        result["server_counted"] = {
            k: int(after[k] - counted.get(k, 0))
            for k in sorted(after)
            if after[k] - counted.get(k, 0)
        }
        result["workers"] = args.workers if server else None
        print(json.dumps(result, indent=2))
        print(
            f"{result['clients']} clients, {result['seconds']} s: {result['requests_per_second']} requests/s, "
            f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, "
            f"errors {result['errors']}"
        )
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        if result["errors"]:
            sys.exit(1)
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        if started_db and not args.keep:
            ioc("db", "down", env=env, check=False)


if __name__ == "__main__":
    main()
