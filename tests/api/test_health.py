"""/healthz and /readyz on the real app and the test PostGIS (no token needed)."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from api.health import HealthSettings, Readiness, health_routes, migration_head, parse_interval
from tests.api.conftest import _free_port, _with_database

pytestmark = pytest.mark.postgis


def test_healthz_answers_without_a_token(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == "ok" and body["pid"] > 0 and body["uptime_seconds"] >= 0
    assert r.headers["cache-control"] == "no-store"


def test_readyz_on_a_current_database(client):
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready" and body["reasons"] == []
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"] == {
        "ok": True,
        "current": migration_head(),
        "head": migration_head(),
    }
    assert body["checks"]["jobs"]["table"] is True


def test_probes_and_metrics_need_no_token_when_reads_are_protected(
    api_database_url, api_engine, settings
):
    from api.app import create_app

    app = create_app(
        settings.model_copy(update={"protect_reads": True}), api_database_url, engine=api_engine
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/collections").status_code == 401
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        assert c.get("/metrics").status_code == 200


def test_unreachable_database_is_503_with_the_reason():
    url = f"postgresql://ioc@127.0.0.1:{_free_port()}/ioc"
    app = Starlette(routes=health_routes(url, HealthSettings(_env_file=None, timeout_seconds=2)))
    with TestClient(app) as c:
        r = c.get("/readyz")
        assert c.get("/healthz").status_code == 200  # the process is up all the same
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready" and body["checks"]["database"]["ok"] is False
    assert body["reasons"][0].startswith("database not reachable")


def test_schema_behind_the_code_is_not_ready(database_url):
    from gis.db import migrate

    name = "ioc_health_old_schema"
    admin = _with_database(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(database_url, name)
    try:
        migrate.upgrade(url, "0008")
        ready, body = Readiness(url, HealthSettings(_env_file=None)).check()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert not ready
    assert body["checks"]["migrations"] == {
        "ok": False,
        "current": "0008",
        "head": migration_head(),
    }
    assert "run `ioc db migrate`" in body["reasons"][0]
    assert body["checks"]["jobs"]["table"] is False  # job_runs comes with 0009


@pytest.fixture
def job_runs(api_engine):
    """Rows of job_runs committed for the test, removed afterwards."""
    from sqlalchemy import text

    def add(
        job: str, status: str, started: dt.datetime, minutes: float = 1, trigger: str = "schedule"
    ):
        with api_engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO job_runs (job, status, started_at, finished_at, error, host, pid, trigger) "
                    "VALUES (:j, :s, :t, :f, :e, 'test', 1, :tr)"
                ),
                {
                    "j": job,
                    "s": status,
                    "t": started,
                    "f": started + dt.timedelta(minutes=minutes),
                    "e": "boom" if status == "failed" else None,
                    "tr": trigger,
                },
            )

    yield add
    with api_engine.begin() as conn:
        conn.execute(text("DELETE FROM job_runs WHERE host = 'test'"))


def test_a_job_overdue_makes_the_service_not_ready(client, job_runs):
    now = dt.datetime.now(dt.UTC)
    # a crawl every 30 min that stopped succeeding 3 hours ago (its last two runs failed)
    for k in range(6, 12):
        job_runs("crawl:baothu", "succeeded", now - dt.timedelta(minutes=30 * k))
    job_runs("crawl:baothu", "failed", now - dt.timedelta(minutes=150))
    job_runs("crawl:baothu", "failed", now - dt.timedelta(minutes=120))
    job_runs("digest", "succeeded", now - dt.timedelta(hours=2))  # learned nothing: 0 gaps
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    jobs = {j["job"]: j for j in body["checks"]["jobs"]["jobs"]}
    crawl = jobs["crawl:baothu"]
    assert crawl["status"] == "late" and crawl["interval_from"] == "learned"
    assert crawl["expected_every_seconds"] == pytest.approx(1800, rel=0.01)
    assert crawl["last_status"] == "failed" and crawl["last_error"] == "boom"
    assert jobs["digest"]["status"] == "unknown"
    assert any("job 'crawl:baothu' has not succeeded" in reason for reason in body["reasons"])

    job_runs("crawl:baothu", "succeeded", now - dt.timedelta(minutes=5))
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert {j["job"]: j["status"] for j in r.json()["checks"]["jobs"]["jobs"]}[
        "crawl:baothu"
    ] == "ok"


def test_configured_intervals(api_database_url, job_runs):
    now = dt.datetime.now(dt.UTC)
    job_runs("digest", "succeeded", now - dt.timedelta(hours=30))
    job_runs("backup", "failed", now - dt.timedelta(hours=1))
    settings = HealthSettings(
        _env_file=None, job_intervals="digest=24h, backup=1d, retrain=7d, crawl=30m", tolerance=1.0
    )
    ready, body = Readiness(api_database_url, settings).check()
    jobs = {j["job"]: j for j in body["checks"]["jobs"]["jobs"]}
    assert jobs["digest"]["status"] == "late" and jobs["digest"]["interval_from"] == "configured"
    assert jobs["backup"]["status"] == "pending"  # first run failed, still within its day
    assert jobs["retrain"]["status"] == "pending" and "last_status" not in jobs["retrain"]
    assert not ready and len(body["reasons"]) == 1

    with_tolerance = HealthSettings(_env_file=None, job_intervals="digest=24h", tolerance=2.0)
    assert Readiness(api_database_url, with_tolerance).check()[0] is True


@pytest.mark.parametrize("bad", ["crawl", "crawl=soon", "digest=0h"])
def test_bad_interval_setting_is_refused(bad):
    with pytest.raises(ValueError, match="job=interval|not an interval|must be positive"):
        HealthSettings(_env_file=None, job_intervals=bad)
    assert parse_interval("90s") == 90.0
