"""/metrics (Prometheus text) and the request-id middleware on the real app and test PostGIS;
several uvicorn workers and a crawl process sharing their counts (multiprocess mode)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api.metrics import ObservabilityMiddleware, observe_delivery, observe_detection, observe_job
from tests.api.conftest import REPO, _free_port

pytestmark = pytest.mark.postgis
ITEMS = "/collections/{collection_id}/items"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def scrape(client) -> str:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def test_requests_are_counted_by_route_template_and_status(client):
    before = scrape(client)
    assert client.get("/collections/parcels/items", params={"limit": 1}).status_code == 200
    assert client.get("/collections/admin-units/items", params={"limit": 1}).status_code == 200
    assert client.get("/collections/parcels/items", params={"limit": "x"}).status_code == 400
    assert client.get("/no/such/thing").status_code == 404
    after = scrape(client)

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("ioc_http_requests_total", method="GET", route=ITEMS, status="200") == 2
    assert delta("ioc_http_requests_total", method="GET", route=ITEMS, status="400") == 1
    assert delta("ioc_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert delta("ioc_http_request_duration_seconds_count", method="GET", route=ITEMS) == 3
    assert (
        delta("ioc_http_request_duration_seconds_bucket", method="GET", route=ITEMS, le="+Inf") == 3
    )
    # raw paths never become label values (bounded series); the probes are not measured
    assert (
        'route="/collections/parcels/items"' not in after and 'route="/no/such/thing"' not in after
    )
    assert 'route="/metrics"' not in after
    assert sample(after, "ioc_http_requests_in_progress") == 1  # the scrape itself


def test_request_id_is_echoed_or_generated(client):
    assert (
        client.get("/conformance", headers={"X-Request-ID": "abc-123.x"}).headers["x-request-id"]
        == "abc-123.x"
    )
    generated = client.get("/conformance").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    bad = client.get("/conformance", headers={"X-Request-ID": "a b\tc" + "x" * 300}).headers[
        "x-request-id"
    ]
    assert re.fullmatch(r"[0-9a-f]{32}", bad)
    assert (
        client.get("/no/such", headers={"X-Request-ID": "nf-1"}).headers["x-request-id"] == "nf-1"
    )


def test_log_lines_carry_the_request_id():
    from ioc.logging import configure_logging

    async def hello(request):
        logging.getLogger("api.test").warning("serving %s", request.url.path)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(ObservabilityMiddleware, access_log=True)
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("json", "INFO", stream=stream)
    try:
        with TestClient(app) as c:
            r = c.get("/hello", headers={"X-Request-ID": "req-42"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [x for x in lines if x["logger"] in ("api.test", "api.access")]
    assert r.headers["x-request-id"] == "req-42"
    assert [x["logger"] for x in mine] == ["api.test", "api.access"]
    assert all(x["request_id"] == "req-42" for x in mine)
    assert mine[0]["message"] == "serving /hello" and mine[0]["level"] == "WARNING"
    assert mine[1]["route"] == "/hello" and mine[1]["status"] == 200 and "duration_ms" in mine[1]
    assert set(mine[0]) >= {"time", "level", "logger", "message", "request_id"}


def test_database_pool_usage(client, settings):
    client.get("/collections/parcels/items", params={"limit": 1})
    text = scrape(client)
    pools = {
        s.labels["pool"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "ioc_db_pool_connections"
    }
    features = [p for p in pools if p.startswith("features:ioc_api_test:")]
    assert features and "writes" in pools
    assert (
        sample(text, "ioc_db_pool_connections", pool=features[0], state="max") == settings.pool_size
    )
    assert sample(text, "ioc_db_pool_connections", pool=features[0], state="size") >= 1
    assert sample(text, "ioc_db_pool_requests_total", pool=features[0]) >= 1


def test_job_detection_and_delivery_helpers(client):
    before = scrape(client)
    observe_job("crawl", 12.5, "succeeded")
    observe_job("digest", "failed", 3.0)  # (job, status, seconds) as ioc.scheduler calls it
    observe_detection("succeeded", {"high": 2, "low": 1})
    observe_detection("failed", [{"severity": "medium"}])
    observe_delivery("digest", "email", sent=3, failed=1)
    after = scrape(client)

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("ioc_job_runs_total", job="crawl", status="succeeded") == 1
    assert delta("ioc_job_runs_total", job="digest", status="failed") == 1
    assert delta("ioc_job_duration_seconds_sum", job="crawl") == pytest.approx(12.5)
    assert delta("ioc_job_duration_seconds_bucket", job="crawl", le="15.0") == 1
    assert sample(after, "ioc_job_last_success_timestamp_seconds", job="crawl") == pytest.approx(
        time.time(), abs=60
    )
    assert delta("ioc_detection_runs_total", status="succeeded") == 1
    assert delta("ioc_detection_runs_total", status="failed") == 1
    assert delta("ioc_parcel_alerts_total", severity="high") == 2
    assert delta("ioc_parcel_alerts_total", severity="medium") == 1
    assert delta("ioc_deliveries_total", kind="digest", channel="email", outcome="sent") == 3
    assert delta("ioc_deliveries_total", kind="digest", channel="email", outcome="failed") == 1


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the server exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            pytest.fail(f"the server did not start: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


@pytest.mark.slow
def test_several_workers_share_their_counts(api_database_url, tmp_path):
    """`ioc serve --workers 2`: whichever worker answers /metrics reports every worker's
    requests (multiprocess mode in <state>/metrics/<pid>)."""
    port = _free_port()
    state = tmp_path / "state"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        IOC_DATABASE_URL=api_database_url,
        IOC_STATE_DIR=str(state),
        IOC_LOG_FORMAT="json",
        IOC_API_ACCESS_LOG="true",
    )
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ioc.cli", "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{base}/healthz", proc, log)
        pids = set()
        n = 60
        with httpx.Client(base_url=base, timeout=30) as c:
            for _ in range(n):
                assert c.get("/conformance", headers={"Connection": "close"}).status_code == 200
            for _ in range(300):  # the kernel spreads new connections over the workers
                pids.add(c.get("/healthz", headers={"Connection": "close"}).json()["pid"])
                if len(pids) == 2:
                    break
            texts = [c.get("/metrics", headers={"Connection": "close"}).text for _ in range(4)]
            assert c.get("/collections", headers={"X-Request-ID": "trace-77"}).status_code == 200
            time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(20)
    # the workers log like the command: JSON lines, access lines with the request id
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    access = [x for x in lines if x["logger"] == "uvicorn.access"]
    assert len(access) >= n and all(x.get("request_id") for x in access)
    assert any(x["request_id"] == "trace-77" and "/collections" in x["message"] for x in access)
    assert len(pids) == 2, "both workers should have answered"
    for text in texts:  # every scrape, whichever worker served it, counts all of them
        assert (
            sample(
                text, "ioc_http_requests_total", method="GET", route="/conformance", status="200"
            )
            == n
        )
    folders = [p for p in (state / "metrics").iterdir()]
    assert len(folders) == 1 and folders[0].name.isdigit() and any(folders[0].glob("counter_*.db"))


@pytest.mark.slow
def test_crawl_counts_reach_the_metrics_of_another_process(tmp_path):
    """A crawl in its own process (as ioc run starts them) counts pages, errors and scored
    articles per outlet into the shared folder; the API process reads them."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    from crawler.localsite import LocalSite

    crawler_tests = REPO / "tests" / "crawler"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with LocalSite(crawler_tests / "site") as site:
        conf = {
            "sites_yaml": (crawler_tests / "sites_test.yaml").read_text(encoding="utf-8"),
            "base": site.base,
            "state_dir": str(tmp_path),
            "database_url": None,
            "job": "metrics",
        }
        path = tmp_path / "crawl.json"
        path.write_text(json.dumps(conf))
        env = {
            **os.environ,
            "PYTHONWARNINGS": "ignore",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        done = subprocess.run(
            [sys.executable, str(crawler_tests / "crawl_runner.py"), str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((tmp_path / "stats-metrics-.json").read_text())
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    text = generate_latest(registry).decode()
    pages = {
        s.labels["outlet"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "ioc_crawl_pages_total"
    }
    assert sum(pages.values()) == stats["response_received_count"]
    assert (
        pages["testsite"] >= 9 and pages.get("unknown", 0) <= 1
    )  # robots.txt belongs to no outlet
    assert (
        sample(text, "ioc_articles_scored_total", outlet="testsite")
        == stats.get("ioc/scored", 0)
        > 0
    )
    errors = sum(v for k, v in stats.items() if k.startswith("ioc/failed/"))
    counted = sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "ioc_crawl_errors_total" and s.labels.get("outlet") == "testsite"
    )
    assert counted == errors > 0


def test_stored_counts_match_the_database(client, api_engine):
    from tests.api.conftest import count

    text = scrape(client)
    assert sample(text, "ioc_database_up") == 1
    alerts = sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "ioc_parcel_alerts"
    )
    assert alerts == count(api_engine, "SELECT count(*) FROM parcel_alerts") > 0
    assert sample(text, "ioc_parcel_alerts", severity="high", review_status="new") == count(
        api_engine,
        "SELECT count(*) FROM parcel_alerts WHERE severity = 'high' AND review_status = 'new'",
    )
    assert sample(text, "ioc_detection_runs", status="succeeded") == count(
        api_engine, "SELECT count(*) FROM detection_runs WHERE status = 'succeeded'"
    )
    assert sample(text, "ioc_articles", scored="true") == count(
        api_engine, "SELECT count(DISTINCT article_id) FROM article_scores"
    )


def test_metrics_answer_when_the_database_does_not():
    from api.metrics import metrics_routes

    app = Starlette(
        routes=metrics_routes(stored_counts=f"postgresql://ioc@127.0.0.1:{_free_port()}/ioc")
    )
    with TestClient(app) as c:
        started = time.perf_counter()
        text = scrape(c)
    assert time.perf_counter() - started < 5
    assert sample(text, "ioc_database_up") == 0 and "ioc_parcel_alerts{" not in text
