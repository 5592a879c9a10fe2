"""Prometheus metrics (prometheus-client) at ``/metrics`` and the middleware that measures
every request and gives it an id.

Served metrics (text format 0.0.4):

* ``ioc_http_requests_total{method,route,status}`` and
  ``ioc_http_request_duration_seconds{method,route}`` (histogram): ``route`` is the route
  TEMPLATE (``/collections/{collection_id}/items``), never the raw path, so the number of
  series stays bounded; requests matching no route count as ``<unmatched>``;
  ``ioc_http_requests_in_progress``;
* ``ioc_crawl_pages_total{outlet}``, ``ioc_crawl_items_total{outlet,outcome}``,
  ``ioc_crawl_errors_total{outlet,stage}``, ``ioc_articles_scored_total{outlet}`` (counted by
  the crawler, :mod:`crawler.metrics`);
* ``ioc_job_runs_total{job,status}``, ``ioc_job_duration_seconds{job}``,
  ``ioc_job_last_success_timestamp_seconds{job}`` (:func:`observe_job`, called by ``ioc run``);
* ``ioc_detection_runs_total{status}``, ``ioc_parcel_alerts_total{severity}``
  (:func:`observe_detection`); ``ioc_deliveries_total{kind,channel,outcome}``
  (:func:`observe_delivery`);
* what the database holds, read at scrape time (exact across processes and restarts):
  ``ioc_detection_runs{status}``, ``ioc_parcel_alerts{severity,review_status}``,
  ``ioc_articles{scored}``, ``ioc_database_up``;
* ``ioc_db_pool_connections{pool,state}`` (size, available, in_use, max),
  ``ioc_db_pool_requests_waiting{pool}``, ``ioc_db_pool_requests_total{pool}``,
  ``ioc_db_pool_wait_seconds_total{pool}``, ``ioc_db_pool_errors_total{pool}``: the fast
  provider's psycopg pools and the app's SQLAlchemy engine, read at scrape time.

Several processes (uvicorn workers, ``ioc run``'s jobs and its crawl subprocesses) share their
counts through prometheus-client's multiprocess mode: :func:`setup_multiprocess` points
``PROMETHEUS_MULTIPROC_DIR`` at ``<state dir>/metrics`` and must run before any metric is used
in the process (the metrics here are created lazily for that reason); the processes started
afterwards inherit it. Pool gauges are then those of the worker that answers the scrape
(label ``pid``).

The middleware also sets the request id (``X-Request-ID`` from the client when it is a plain
token, else generated; echoed in the response) for the logs (:mod:`api.context`), and writes an
access line per request to the ``api.access`` logger when asked.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route

from api.context import REQUEST_ID, REQUEST_ID_HEADER, request_id_from

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "<unmatched>"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)

access_log = logging.getLogger("api.access")


def setup_multiprocess(directory: str | Path, clean: bool = True) -> Path:
    """Use prometheus-client's multiprocess mode with ``directory`` (created; its old
    ``*.db`` files removed when ``clean``: call it once in the parent process at service
    start, before workers and before any metric is used). Returns the directory."""
    path = Path(directory)
    if clean and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    import prometheus_client.values as values

    values.ValueClass = values.get_value_class()
    return path


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


@functools.cache
def metrics() -> SimpleNamespace:
    """The metric objects (created at first use, after :func:`setup_multiprocess`)."""
    from prometheus_client import Counter, Gauge, Histogram

    return SimpleNamespace(
        http_requests=Counter(
            "ioc_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
        ),
        http_duration=Histogram(
            "ioc_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
        ),
        http_in_progress=Gauge(
            "ioc_http_requests_in_progress",
            "HTTP requests being served.",
            multiprocess_mode="livesum",
        ),
        job_runs=Counter(
            "ioc_job_runs_total",
            "Runs of scheduled jobs by job and final status.",
            ["job", "status"],
        ),
        job_duration=Histogram(
            "ioc_job_duration_seconds",
            "Duration of scheduled job runs.",
            ["job"],
            buckets=JOB_BUCKETS,
        ),
        job_last_success=Gauge(
            "ioc_job_last_success_timestamp_seconds",
            "Unix time of each job's last successful run.",
            ["job"],
            multiprocess_mode="max",
        ),
        detection_runs=Counter(
            "ioc_detection_runs_total", "Land-change detection runs by status.", ["status"]
        ),
        parcel_alerts=Counter(
            "ioc_parcel_alerts_total", "Parcel alerts raised by severity.", ["severity"]
        ),
        deliveries=Counter(
            "ioc_deliveries_total",
            "Messages delivered (or not) by kind, channel and outcome.",
            ["kind", "channel", "outcome"],
        ),
    )


# -- helpers for the scheduler, detection and delivery ------------------------------------------
def observe_job(job: str, seconds: float, status: str) -> None:
    """Record one run of a scheduled job (``status``: succeeded or failed). The order
    ``(job, status, seconds)`` is accepted too."""
    if isinstance(seconds, str) and not isinstance(status, str):
        seconds, status = status, seconds
    m = metrics()
    m.job_runs.labels(job=job, status=status).inc()
    m.job_duration.labels(job=job).observe(max(0.0, float(seconds)))
    if status == "succeeded":
        m.job_last_success.labels(job=job).set(time.time())


def observe_detection(status: str, alerts: Mapping[str, int] | Iterable[Any] = ()) -> None:
    """Record a detection run and its alerts (a {severity: count} mapping, or alerts with a
    ``severity`` attribute or key)."""
    m = metrics()
    m.detection_runs.labels(status=status).inc()
    if isinstance(alerts, Mapping):
        counts = dict(alerts)
    else:
        counts: dict[str, int] = {}
        for a in alerts:
            sev = a.get("severity") if isinstance(a, Mapping) else getattr(a, "severity", None)
            counts[str(sev)] = counts.get(str(sev), 0) + 1
    for severity, n in counts.items():
        if n:
            m.parcel_alerts.labels(severity=severity).inc(n)


def observe_delivery(kind: str, channel: str, sent: int = 0, failed: int = 0) -> None:
    m = metrics()
    if sent:
        m.deliveries.labels(kind=kind, channel=channel, outcome="sent").inc(sent)
    if failed:
        m.deliveries.labels(kind=kind, channel=channel, outcome="failed").inc(failed)


# -- database pools -----------------------------------------------------------------------------
class PoolCollector:
    """Pool usage read at scrape time: the fast provider's psycopg pools (api.provider) and
    SQLAlchemy engines given by name."""

    def __init__(self, engines: Mapping[str, Any] | None = None) -> None:
        self.engines = dict(engines or {})

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["pool", "pid"] if multiprocess_enabled() else ["pool"]
        extra = [str(os.getpid())] if multiprocess_enabled() else []
        conns = GaugeMetricFamily(
            "ioc_db_pool_connections",
            "Database pool connections by state.",
            labels=[*labels, "state"],
        )
        waiting = GaugeMetricFamily(
            "ioc_db_pool_requests_waiting", "Requests waiting for a connection.", labels=labels
        )
        requests = CounterMetricFamily(
            "ioc_db_pool_requests", "Connections requested from the pool.", labels=labels
        )
        wait = CounterMetricFamily(
            "ioc_db_pool_wait_seconds", "Time spent waiting for a connection.", labels=labels
        )
        errors = CounterMetricFamily(
            "ioc_db_pool_errors", "Failed connection requests (timeouts, errors).", labels=labels
        )
        try:
            from api import pools as pool_module

            pools = list(getattr(pool_module, "_POOLS", {}).items())
        except ImportError:
            pools = []
        for key, pool in pools:
            s = pool.get_stats()
            dbname = urlsplit(getattr(key, "database_url", "")).path.lstrip("/") or "db"
            name = [f"features:{dbname}:{getattr(key, 'size', '')}", *extra]
            size, available = s.get("pool_size", 0), s.get("pool_available", 0)
            for state, value in (
                ("size", size),
                ("available", available),
                ("in_use", size - available),
                ("max", s.get("pool_max", 0)),
            ):
                conns.add_metric([*name, state], value)
            waiting.add_metric(name, s.get("requests_waiting", 0))
            requests.add_metric(name, s.get("requests_num", 0))
            wait.add_metric(name, s.get("requests_wait_ms", 0) / 1000.0)
            errors.add_metric(name, s.get("requests_errors", 0))
        for key, engine in self.engines.items():
            pool = getattr(engine, "pool", None)
            if pool is None or not hasattr(pool, "checkedout"):
                continue
            name = [key, *extra]
            in_use = pool.checkedout()
            conns.add_metric([*name, "in_use"], in_use)
            conns.add_metric([*name, "available"], pool.checkedin())
            conns.add_metric([*name, "size"], in_use + pool.checkedin())
            conns.add_metric(
                [*name, "max"],
                pool.size() + max(pool._max_overflow, 0)
                if hasattr(pool, "_max_overflow")
                else pool.size(),
            )
        yield from (conns, waiting, requests, wait, errors)


class StoredCountsCollector:
    """What the database holds, read at scrape time (cached ``ttl`` seconds), so the figures
    are exact whichever process produced them and survive restarts:
    ``ioc_detection_runs{status}``, ``ioc_parcel_alerts{severity,review_status}``,
    ``ioc_articles{scored}`` and ``ioc_database_up`` (0 when the queries fail)."""

    SQL = {
        "runs": "SELECT status, count(*) FROM detection_runs GROUP BY status",
        "alerts": "SELECT severity, review_status, count(*) FROM parcel_alerts GROUP BY 1, 2",
        "articles": "SELECT EXISTS (SELECT 1 FROM article_scores s WHERE s.article_id = a.id), count(*) "
        "FROM articles a GROUP BY 1",
    }

    def __init__(self, database_url: str, ttl: float = 15.0, timeout_ms: int = 2000) -> None:
        self.database_url = database_url
        self.ttl = ttl
        self.timeout_ms = timeout_ms
        self._cache: tuple[float, dict[str, list] | None] = (0.0, None)

    def _read(self) -> dict[str, list] | None:
        at, data = self._cache
        if time.monotonic() - at < self.ttl:
            return data
        import psycopg

        try:  # a connection of its own, with timeouts: a scrape never waits on the app's pools
            with psycopg.connect(
                self.database_url,
                connect_timeout=max(1, self.timeout_ms // 1000),
                options=f"-c statement_timeout={int(self.timeout_ms)}",
                application_name="ioc-metrics",
            ) as conn:
                data = {
                    k: [tuple(r) for r in conn.execute(q).fetchall()] for k, q in self.SQL.items()
                }
        except Exception as exc:  # noqa: BLE001 - a scrape must answer even when the database does not
            logging.getLogger(__name__).debug("stored counts not read: %s", exc)
            data = None
        self._cache = (time.monotonic(), data)
        return data

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        data = self._read()
        up = GaugeMetricFamily(
            "ioc_database_up", "1 when the database answered the last scrape's queries."
        )
        up.add_metric([], 0 if data is None else 1)
        yield up
        if data is None:
            return
        runs = GaugeMetricFamily(
            "ioc_detection_runs", "Stored land-change detection runs by status.", labels=["status"]
        )
        for status, n in data["runs"]:
            runs.add_metric([str(status)], n)
        alerts = GaugeMetricFamily(
            "ioc_parcel_alerts",
            "Stored parcel alerts by severity and review status.",
            labels=["severity", "review_status"],
        )
        for severity, review, n in data["alerts"]:
            alerts.add_metric([str(severity), str(review)], n)
        articles = GaugeMetricFamily(
            "ioc_articles", "Stored articles, scored or not.", labels=["scored"]
        )
        for scored, n in data["articles"]:
            articles.add_metric(["true" if scored else "false"], n)
        yield from (runs, alerts, articles)


def render_metrics(collectors: Iterable[Any] = ()) -> bytes:
    """The metrics in Prometheus text format (all processes in multiprocess mode)."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client import multiprocess as mp

    metrics()  # declared even before their first use
    if multiprocess_enabled():
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
        out = generate_latest(registry)
    else:
        out = generate_latest(REGISTRY)
    extra = CollectorRegistry(auto_describe=False)
    for c in collectors:
        extra.register(c)
    return out + generate_latest(extra)


def metrics_routes(
    engines: Mapping[str, Any] | None = None, stored_counts: str | None = None
) -> list[Route]:
    """``GET /metrics`` (no token: put it behind the reverse proxy's rules if it must not be
    public). ``engines``: SQLAlchemy engines whose pools are reported; ``stored_counts``: the
    database URL to read the stored counts from (:class:`StoredCountsCollector`)."""
    from starlette.concurrency import run_in_threadpool

    collectors: list[Any] = [PoolCollector(engines)]
    if stored_counts is not None:
        collectors.append(StoredCountsCollector(stored_counts))

    async def endpoint(request: Request) -> Response:
        body = await run_in_threadpool(render_metrics, collectors)
        return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return [Route("/metrics", endpoint, methods=["GET"], include_in_schema=False)]


# -- middleware -----------------------------------------------------------------------------------
def route_template(scope: dict[str, Any]) -> str:
    """The template of the route ``scope`` matches (``/collections/{collection_id}/items``)."""
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            return route.path.rstrip("/") + "/{path}"
        return getattr(route, "path", UNMATCHED)
    return UNMATCHED


def _mark_dead(pid: int) -> None:
    """A worker that stops takes its live gauges (requests in progress) with it."""
    try:
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)
    except Exception as exc:  # noqa: BLE001 - shutting down anyway
        logging.getLogger(__name__).debug("metrics of %s not cleared: %s", pid, exc)


class ObservabilityMiddleware:
    """Pure ASGI middleware: request id (X-Request-ID), metrics by route template, access log.

    ``skip``: route templates not measured (the metrics and probes themselves).
    """

    def __init__(
        self,
        app: Callable,
        access_log: bool = False,
        skip: Iterable[str] = ("/metrics", "/healthz", "/readyz"),
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.skip = set(skip)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan" and multiprocess_enabled():
            await self.app(scope, receive, self._on_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for key, value in scope.get("headers", ()):
            if key == REQUEST_ID_HEADER.encode():
                header = value.decode("latin-1")
                break
        rid = request_id_from(header)
        token = REQUEST_ID.set(rid)
        m = metrics()
        started = time.perf_counter()
        status = 500
        raw_rid = rid.encode("latin-1")

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", raw_rid))
                message = {**message, "headers": headers}
            await send(message)

        m.http_in_progress.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            m.http_in_progress.dec()
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope.get("method", "GET")
            if route not in self.skip:
                m.http_requests.labels(method=method, route=route, status=str(status)).inc()
                m.http_duration.labels(method=method, route=route).observe(elapsed)
            if self.access_log:
                access_log.info(
                    "%s %s %d %.1f ms",
                    method,
                    scope.get("path", ""),
                    status,
                    elapsed * 1000,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )
            REQUEST_ID.reset(token)

    @staticmethod
    def _on_shutdown(send):
        async def wrapped(message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                _mark_dead(os.getpid())
            await send(message)

        return wrapped
