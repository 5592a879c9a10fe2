"""Fixtures of the API tests: a database of their own (same PostGIS server as the session
``database_url``, migrated and seeded once), the app in-process, and a real server process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from tests.api.seed import seed

REPO = Path(__file__).resolve().parents[2]
TOKEN = "officer:test-token-0123456789abcdef"
BEARER = {"Authorization": "Bearer test-token-0123456789abcdef"}


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@contextlib.contextmanager
def migrated_database(database_url: str, name: str):
    """A freshly migrated database ``name`` next to ``database_url`` (its URL), dropped again
    afterwards together with the API's pools; skips when the user may not create databases."""
    from gis.db import migrate

    admin = _with_database(database_url, "postgres")
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.skip(f"needs a database of its own ({name}) and cannot create it: {exc}")
    url = _with_database(database_url, name)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        from api.pools import close_pools

        close_pools()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def api_database_url(database_url) -> str:
    """A migrated, seeded database for the API tests (the server commits to it)."""
    from gis.db.session import make_engine

    with migrated_database(database_url, "ioc_api_test") as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            seed(conn)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def api_engine(api_database_url):
    from gis.db.session import make_engine

    engine = make_engine(api_database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def settings():
    from api.settings import ApiSettings

    return ApiSettings(
        tokens=[TOKEN], max_items=1000, default_items=10, base_url="http://testserver"
    )


@pytest.fixture(scope="session")
def client(api_database_url, api_engine, settings):
    """The app in-process (starlette TestClient)."""
    from starlette.testclient import TestClient

    from api.app import create_app

    app = create_app(settings, api_database_url, engine=api_engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


server_log_path: list[Path] = []


def server_log() -> str:
    """What the server process logged so far (uvicorn access log: one line per request)."""
    return server_log_path[0].read_text(errors="replace") if server_log_path else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(api_database_url, tmp_path_factory):
    """A real `serve` process (uvicorn[standard]) on a free port of 127.0.0.1."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {
        **os.environ,
        "IOC_DATABASE_URL": api_database_url,
        "IOC_API_TOKENS": TOKEN,
        "IOC_API_MAX_ITEMS": "1000",
        "IOC_API_ACCESS_LOG": "true",
        "IOC_API_BASE_URL": f"http://127.0.0.1:{port}",
    }
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from api.cli import serve; serve()", "--port", str(port)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/conformance", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            proc.terminate()
            pytest.fail(f"the server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)
    server_log_path[:] = [log]
    yield base
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def count(engine, sql: str, **params) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar())
