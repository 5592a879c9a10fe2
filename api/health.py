"""Probes: ``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work).

``/readyz`` answers 200 when everything below holds and 503 otherwise, with a JSON body that
says what was checked and why it is not ready:

* ``database``: a connection within ``IOC_HEALTH_TIMEOUT_SECONDS`` (default 3) and ``SELECT 1``;
* ``migrations``: the database's Alembic revision equals the head of the shipped migration
  scripts (an upgrade of the code without ``ioc db migrate`` is not ready);
* ``jobs``: for each scheduled job of ``ioc run`` (table ``job_runs``), its last successful run
  finished within ``tolerance`` × its expected interval (default 2: one missed turn is
  tolerated). A job's expected interval is the one configured in ``IOC_HEALTH_JOB_INTERVALS``
  (``crawl=30m,digest=24h,backup=1d``; a name without ``:`` covers every ``crawl:OUTLET``
  job) or given by the caller, else the median gap between its last scheduled starts (at
  least 3 gaps: learned from ``job_runs``, so ``ioc run``'s schedule needs no copy here); a
  job with neither is ``unknown`` and does not fail readiness, nor does a job that has never
  run (``pending``) or whose first runs are still within the allowance. Without the
  ``job_runs`` table every job is ``unknown``.

Neither probe needs a token, touches pygeoapi, or logs a line per call.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import psycopg
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

STARTED = time.time()
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(value: str | float | int) -> float:
    """Seconds of ``30m``, ``24h``, ``1d``, ``90s`` or a plain number of seconds.

    >>> parse_interval("30m"), parse_interval("1d"), parse_interval(45)
    (1800.0, 86400.0, 45.0)
    """
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value).lower())
        if not m:
            raise ValueError(f"'{value}' is not an interval (e.g. 30m, 24h, 1d, 900)")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"interval '{value}' must be positive")
    return seconds


class HealthSettings(BaseSettings):
    """Readiness settings (env prefix ``IOC_HEALTH_``)."""

    model_config = SettingsConfigDict(env_prefix="IOC_HEALTH_", env_file=".env", extra="ignore")

    job_intervals: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, description="job=interval pairs, e.g. crawl=30m,digest=24h"
    )
    tolerance: float = Field(default=2.0, ge=1.0, description="late after tolerance × interval")
    timeout_seconds: float = Field(default=3.0, gt=0, le=60)

    @field_validator("job_intervals", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            out = {}
            for part in filter(None, (p.strip() for p in value.split(","))):
                job, sep, interval = part.partition("=")
                if not sep or not job.strip():
                    raise ValueError(f"'{part}' is not job=interval")
                out[job.strip()] = parse_interval(interval)
            return out
        if isinstance(value, Mapping):
            return {k: parse_interval(v) for k, v in value.items()}
        return value


@functools.cache
def migration_head() -> str | None:
    """The head revision of the shipped Alembic scripts."""
    from alembic.script import ScriptDirectory

    from gis.db.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return ",".join(sorted(heads)) if heads else None


_JOBS_SQL = """
SELECT job,
       max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success,
       min(started_at) AS first_started,
       max(started_at) AS last_started,
       (array_agg(status ORDER BY started_at DESC, id DESC))[1] AS last_status,
       (array_agg(error ORDER BY started_at DESC, id DESC))[1] AS last_error
FROM job_runs GROUP BY job ORDER BY job
"""

# median gap between the last 11 scheduled starts of each job (10 gaps)
_GAPS_SQL = """
WITH r AS (
  SELECT job, started_at,
         lag(started_at) OVER (PARTITION BY job ORDER BY started_at) AS prev,
         row_number() OVER (PARTITION BY job ORDER BY started_at DESC) AS rn
  FROM job_runs WHERE trigger = 'schedule'
)
SELECT job, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - prev)) AS gap,
       count(*) AS gaps
FROM r WHERE rn <= 11 AND prev IS NOT NULL GROUP BY job
"""
MIN_GAPS = 3


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def job_status(
    row: Mapping[str, Any] | None, interval: float | None, tolerance: float, now: dt.datetime
) -> str:
    """ok | late | pending | unknown for one job (see the module docstring)."""
    if interval is None:
        return "unknown"
    if row is None:
        return "pending"
    allowed = dt.timedelta(seconds=interval * tolerance)
    if row.get("last_success") is not None:
        return "ok" if now - row["last_success"] <= allowed else "late"
    return "pending" if now - row["first_started"] <= allowed else "late"


class Readiness:
    """The checks of ``/readyz`` (blocking: run it in a thread)."""

    def __init__(
        self,
        database_url: str,
        settings: HealthSettings | None = None,
        job_intervals: Mapping[str, float] | Callable[[], Mapping[str, float]] | None = None,
    ) -> None:
        self.database_url = database_url
        self.settings = settings or HealthSettings()
        self._intervals = job_intervals

    def intervals(self) -> dict[str, float]:
        given = self._intervals() if callable(self._intervals) else (self._intervals or {})
        return {**self.settings.job_intervals, **{k: parse_interval(v) for k, v in given.items()}}

    @staticmethod
    def interval_of(
        job: str, configured: Mapping[str, float], learned: Mapping[str, float]
    ) -> tuple[float | None, str | None]:
        """(seconds, where from) of a job: configured for the job or its kind, else learned."""
        for key in (job, job.split(":", 1)[0]):
            if key in configured:
                return configured[key], "configured"
        if job in learned:
            return learned[job], "learned"
        return None, None

    def check(self) -> tuple[bool, dict[str, Any]]:
        started = time.perf_counter()
        timeout = self.settings.timeout_seconds
        checks: dict[str, Any] = {}
        reasons: list[str] = []
        intervals = self.intervals()
        rows: dict[str, dict[str, Any]] | None = None
        learned: dict[str, float] = {}
        try:
            with psycopg.connect(
                self.database_url,
                connect_timeout=max(1, round(timeout)),
                autocommit=True,
                options=f"-c statement_timeout={int(timeout * 1000)}",
                application_name="ioc-readyz",
            ) as conn:
                conn.execute("SELECT 1")
                checks["database"] = {
                    "ok": True,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                }
                current = None
                if (
                    conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0]
                    is not None
                ):
                    current = ",".join(
                        sorted(
                            r[0] for r in conn.execute("SELECT version_num FROM alembic_version")
                        )
                    )
                if conn.execute("SELECT to_regclass('public.job_runs')").fetchone()[0] is not None:
                    cur = conn.execute(_JOBS_SQL)
                    names = [d.name for d in cur.description]
                    rows = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
                    learned = {
                        job: float(gap)
                        for job, gap, n in conn.execute(_GAPS_SQL)
                        if gap and n >= MIN_GAPS
                    }
        except psycopg.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            checks["database"] = {"ok": False, "error": reason[:300]}
            reasons.append(f"database not reachable: {reason[:200]}")
            checks["migrations"] = {"ok": False, "error": "database not reachable"}
            checks["jobs"] = {
                "ok": True,
                "jobs": [{"job": j, "status": "unknown"} for j in sorted(intervals)],
            }
            return False, {"status": "not ready", "reasons": reasons, "checks": checks}
        head = migration_head()
        migrations_ok = current is not None and current == head
        checks["migrations"] = {"ok": migrations_ok, "current": current, "head": head}
        if not migrations_ok:
            reasons.append(
                f"database schema at revision {current or '(none)'}, code expects {head}: run `ioc db migrate`"
            )
        now = dt.datetime.now(dt.UTC)
        jobs = []
        names = set(rows or {}) | {
            j for j in intervals if not any(r.split(":", 1)[0] == j for r in rows or {})
        }
        for job in sorted(names):
            row = (rows or {}).get(job)
            interval, source = self.interval_of(job, intervals, learned)
            status = (
                "unknown"
                if rows is None
                else job_status(row, interval, self.settings.tolerance, now)
            )
            entry: dict[str, Any] = {
                "job": job,
                "status": status,
                "expected_every_seconds": interval,
                "interval_from": source,
            }
            if row:
                entry.update(
                    last_success=_iso(row["last_success"]),
                    last_started=_iso(row["last_started"]),
                    last_status=row["last_status"],
                )
                if row["last_status"] == "failed":
                    entry["last_error"] = (row["last_error"] or "")[:300]
            jobs.append(entry)
            if status == "late":
                reasons.append(
                    f"job '{job}' has not succeeded within {self.settings.tolerance:g} × "
                    f"{interval:g} s (last success: {entry.get('last_success') or 'never'})"
                )
        jobs_ok = all(j["status"] != "late" for j in jobs)
        checks["jobs"] = {"ok": jobs_ok, "table": rows is not None, "jobs": jobs}
        ready = not reasons
        return ready, {
            "status": "ready" if ready else "not ready",
            "reasons": reasons,
            "checks": checks,
        }


def health_routes(
    database_url: str,
    settings: HealthSettings | None = None,
    job_intervals: Mapping[str, float] | Callable[[], Mapping[str, float]] | None = None,
) -> list[Route]:
    """``/healthz`` and ``/readyz`` for the app (no token needed)."""
    readiness = Readiness(database_url, settings, job_intervals)
    headers = {"Cache-Control": "no-store"}

    async def healthz(request: Request) -> JSONResponse:
        try:
            from importlib.metadata import version

            release = version("ioc-monitor")
        except Exception:  # noqa: BLE001 - not installed as a distribution
            release = None
        return JSONResponse(
            {
                "status": "ok",
                "pid": os.getpid(),
                "version": release,
                "uptime_seconds": round(time.time() - STARTED, 1),
            },
            headers=headers,
        )

    async def readyz(request: Request) -> JSONResponse:
        ready, body = await run_in_threadpool(readiness.check)
        return JSONResponse(body, status_code=200 if ready else 503, headers=headers)

    return [
        Route("/healthz", healthz, methods=["GET"], include_in_schema=False),
        Route("/readyz", readyz, methods=["GET"], include_in_schema=False),
    ]


def ops_routes(ctx: Any) -> list[Route]:
    """Route group of the served app (:data:`api.routes.ROUTE_GROUPS`): ``/healthz``,
    ``/readyz`` and ``/metrics`` (with the pools of ``ctx``'s engine and feature service)."""
    from api.metrics import metrics_routes

    return [
        *health_routes(ctx.database_url),
        *metrics_routes(engines={"writes": ctx.engine}, stored_counts=ctx.database_url),
    ]
