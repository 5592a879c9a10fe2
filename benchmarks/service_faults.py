"""Faults survived by `ioc run`, measured on real processes (prints figures).

    .venv/bin/python benchmarks/service_faults.py [--scenario kill|outage|both] [--outage-seconds 30]

A throwaway embedded PostGIS (own state folder, migrated), the shipped news mirror
(data/news_mirror: 25 articles) served on 127.0.0.1 with a download delay so a crawl lasts
long enough to be interrupted, and `ioc run` as a real child process:

- **kill**: `ioc run --no-api` is killed with SIGKILL while its crawl has stored part of the
  articles; it is restarted, the next turn is made now (`ioc jobs trigger`). Reported: the
  killed run's row (failed, with its reason) and when it was marked, the articles stored
  before/after, duplicates (rows per canonical URL, and copies of one content hash that are
  not linked as duplicates).
- **outage**: `ioc run` (scheduled work + the API) crawls and serves while the database is
  stopped for N seconds (pg_ctl stop -m fast, then start). The API is polled every 0.25 s
  (`/readyz` and an items page, 5 s client time-out: status 0 = no answer in 5 s); reported:
  the statuses seen during the outage and the slowest answer, the time from
  the database's restart to the first 200 of each, and the articles after the crawls (the one
  cut by the outage and the next turn): lost or duplicated ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from crawler.demo import render_mirror  # noqa: E402
from crawler.localsite import LocalSite  # noqa: E402
from gis.db import migrate  # noqa: E402
from gis.db.embedded import EmbeddedCluster  # noqa: E402
from gis.db.session import make_engine  # noqa: E402

JOB = "crawl:demo-mirror"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(cond, timeout: float, what: str, step: float = 0.25):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = cond()
        except Exception:  # noqa: BLE001 - the database may be down
            value = None
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"timed out waiting for {what}")


class Bench:
    def __init__(self, work: Path, delay: float) -> None:
        self.work = work
        state = work / "db-state"
        state.mkdir(parents=True)
        os.chmod(work, 0o755)
        os.chmod(state, 0o755)
        self.cluster = EmbeddedCluster(state, db_name="ioc_bench")
        self.cluster.initialise()
        self.cluster.start()
        self.cluster.ensure_database()
        self.url = self.cluster.url()
        migrate.upgrade(self.url)
        self.engine = make_engine(self.url, connect_args={"connect_timeout": 2})
        mirror = work / "mirror"
        self.articles = len(render_mirror(REPO / "data", mirror))
        self.site = LocalSite(mirror)
        self.site.__enter__()
        sites = (REPO / "data" / "news_mirror" / "sites.yaml").read_text(encoding="utf-8")
        (work / "sites.yaml").write_text(sites.replace("{base}", self.site.base), encoding="utf-8")
        self.port = _free_port()
        self.env = {
            **os.environ,
            "IOC_DATABASE_URL": self.url,
            "IOC_STATE_DIR": str(work / "state"),
            "IOC_CRAWL_SITES_FILE": str(work / "sites.yaml"),
            "IOC_CRAWL_DOWNLOAD_DELAY": str(delay),
            "IOC_CRAWL_CONCURRENCY_PER_DOMAIN": "1",
            "IOC_CRAWL_AUTOTHROTTLE": "false",
            "IOC_CRAWL_SCORING": "false",
            "IOC_SCHEDULE_DISABLED": "digest,imagery,backup,retrain",
            "IOC_SCHEDULE_POLL_SECONDS": "0.5",
            "IOC_API_PORT": str(self.port),
            "IOC_LOG_LEVEL": "INFO",
            "PYTHONWARNINGS": "ignore",
        }

    def close(self) -> None:
        self.site.__exit__(None, None, None)
        self.engine.dispose()
        self.cluster.stop()

    def reset(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text("TRUNCATE articles, crawl_failures, job_runs, apscheduler_jobs CASCADE")
            )
        shutil.rmtree(self.work / "state", ignore_errors=True)

    def service(self, tag: str, api: bool = False) -> subprocess.Popen:
        log = open(self.work / f"run-{tag}.log", "ab")  # noqa: SIM115 - lives with the process
        args = [sys.executable, "-m", "ioc.cli", "run"] + ([] if api else ["--no-api"])
        return subprocess.Popen(args, env=self.env, cwd=REPO, stdout=log, stderr=log)

    def ioc(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ioc.cli", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def runs(self) -> list:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT id, status, error, pid, started_at, finished_at, counts FROM job_runs "
                        "WHERE job = :j ORDER BY id"
                    ),
                    {"j": JOB},
                )
            )

    def article_stats(self) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(*) AS n, count(DISTINCT canonical_url) AS urls, "
                    "count(*) FILTER (WHERE duplicate_of IS NULL) AS originals, "
                    "count(DISTINCT content_hash) FILTER (WHERE duplicate_of IS NULL) AS distinct_originals "
                    "FROM articles"
                )
            ).one()
        return {
            "rows": row.n,
            "distinct_urls": row.urls,
            "unlinked_copies": row.originals - row.distinct_originals,
        }

    def stored(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM articles")).scalar_one()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scenario_kill(b: Bench) -> dict:
    b.reset()
    victim = b.service("killed")
    _wait(
        lambda: any(r.status == "running" for r in b.runs()) and b.stored() >= 3,
        180,
        "a crawl in progress",
    )
    at_kill = b.stored()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    time.sleep(2)
    after_kill = b.stored()
    t0 = time.monotonic()
    again = b.service("restarted")
    try:
        _wait(lambda: b.runs()[0].status == "failed", 120, "the killed run marked failed")
        marked_after = time.monotonic() - t0
        out = b.ioc("jobs", "trigger", JOB)
        assert out.returncode == 0, out.stderr
        t1 = time.monotonic()
        _wait(lambda: any(r.status == "succeeded" for r in b.runs()), 600, "the next crawl")
        crawl_s = time.monotonic() - t1
    finally:
        _stop(again)
    runs = b.runs()
    stats = b.article_stats()
    return {
        "articles_in_mirror": b.articles,
        "stored_when_killed": at_kill,
        "stored_2s_after_kill": after_kill,
        "killed_run": {"status": runs[0].status, "error": runs[0].error, "pid": victim.pid},
        "marked_failed_s_after_restart": round(marked_after, 1),
        "next_turn": {
            "status": runs[1].status,
            "seconds": round(crawl_s, 1),
            "stored": runs[1].counts.get("stored"),
        },
        "runs": [r.status for r in runs],
        **stats,
        "lost": b.articles - stats["distinct_urls"],
        "duplicate_rows": stats["rows"] - stats["distinct_urls"],
    }


def _get(url: str, timeout: float = 5.0) -> int:
    """HTTP status of a GET; 0 when no answer came within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except Exception:  # noqa: BLE001 - refused / timed out
        return 0


def scenario_outage(b: Bench, outage_s: float) -> dict:
    b.reset()
    svc = b.service("outage", api=True)
    base = f"http://127.0.0.1:{b.port}"
    urls = {"readyz": f"{base}/readyz", "items": f"{base}/collections/articles/items?limit=1"}
    try:
        _wait(lambda: _get(urls["items"]) == 200, 180, "the API")
        _wait(
            lambda: any(r.status == "running" for r in b.runs()) and b.stored() >= 3,
            180,
            "a crawl in progress",
        )
        before = b.stored()
        t_stop = time.monotonic()
        b.cluster.stop()
        seen: dict[str, dict[int, int]] = {k: {} for k in urls}
        slowest: dict[str, float] = {k: 0.0 for k in urls}
        while time.monotonic() - t_stop < outage_s:
            for k, u in urls.items():
                t = time.monotonic()
                code = _get(u)
                slowest[k] = max(slowest[k], time.monotonic() - t)
                seen[k][code] = seen[k].get(code, 0) + 1
            time.sleep(0.25)
        b.cluster.start()
        t_up = time.monotonic()
        recovered: dict[str, float | None] = {k: None for k in urls}
        while time.monotonic() - t_up < 60 and None in recovered.values():
            for k, u in urls.items():
                if recovered[k] is None and _get(u) == 200:
                    recovered[k] = round(time.monotonic() - t_up, 2)
            time.sleep(0.1)
        # the crawl cut by the outage ends (failed or not); the next turn completes the rest
        _wait(
            lambda: all(r.status != "running" for r in b.runs()), 600, "the crawl cut by the outage"
        )
        n = len(b.runs())
        out = b.ioc("jobs", "trigger", JOB)
        assert out.returncode == 0, out.stderr
        _wait(lambda: len(b.runs()) > n and b.runs()[-1].status != "running", 600, "the next crawl")
    finally:
        _stop(svc)
    runs = b.runs()
    stats = b.article_stats()
    return {
        "outage_s": outage_s,
        "stored_before_outage": before,
        "statuses_during_outage": {k: {str(c): n for c, n in v.items()} for k, v in seen.items()},
        "slowest_answer_during_outage_s": {k: round(v, 2) for k, v in slowest.items()},
        "seconds_to_200_after_restart": recovered,
        "runs": [(r.status, (r.error or "")[:160]) for r in runs],
        **stats,
        "lost": b.articles - stats["distinct_urls"],
        "duplicate_rows": stats["rows"] - stats["distinct_urls"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=["kill", "outage", "both"], default="both")
    ap.add_argument("--outage-seconds", type=float, default=30.0)
    ap.add_argument("--delay", type=float, default=0.4, help="crawl download delay (s)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ioc-faults-"))
    b = Bench(work, args.delay)
    out = {}
    try:
        if args.scenario in ("kill", "both"):
            out["kill"] = scenario_kill(b)
            print(
                json.dumps({"kill": out["kill"]}, default=str, ensure_ascii=False, indent=1),
                flush=True,
            )
        if args.scenario in ("outage", "both"):
            out["outage"] = scenario_outage(b, args.outage_seconds)
            print(
                json.dumps({"outage": out["outage"]}, default=str, ensure_ascii=False, indent=1),
                flush=True,
            )
    finally:
        b.close()
        if args.keep:
            print(f"logs in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
