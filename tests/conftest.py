"""Shared fixtures: a real PostGIS for the whole session.

Database URL: ``--database-url`` option, then ``IOC_TEST_DATABASE_URL``, then a throwaway
embedded cluster started from the Debian binaries in a temporary state directory.
With ``--require-db`` (or ``IOC_REQUIRE_DB=1``, always set in CI) a missing database fails the
run instead of skipping the tests that need it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IOC_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-url", default=None, help="PostGIS URL for the tests (migrated to head)."
    )
    parser.addoption(
        "--require-db",
        action="store_true",
        default=os.environ.get("IOC_REQUIRE_DB") == "1",
        help="Fail instead of skipping when no PostGIS can be had.",
    )


def _unavailable(request: pytest.FixtureRequest, reason: str):
    if request.config.getoption("--require-db"):
        pytest.fail(f"PostGIS required but unavailable: {reason}", pytrace=False)
    pytest.skip(f"no PostGIS: {reason}")


@pytest.fixture(scope="session")
def _embedded_cluster(request: pytest.FixtureRequest):
    explicit = request.config.getoption("--database-url") or os.environ.get("IOC_TEST_DATABASE_URL")
    if explicit:
        yield None, explicit
        return
    from gis.db.embedded import EmbeddedCluster, find_pg_bindir
    from gis.errors import DatabaseError

    try:
        find_pg_bindir()
    except DatabaseError as exc:
        _unavailable(request, str(exc))
    state_dir = Path(tempfile.mkdtemp(prefix="ioc-test-state-"))
    os.chmod(state_dir, 0o755)
    cluster = EmbeddedCluster(state_dir, db_name="ioc_test")
    try:
        cluster.initialise()
        cluster.start()
        cluster.ensure_database()
    except DatabaseError as exc:
        _unavailable(request, str(exc))
    try:
        yield cluster, cluster.url()
    finally:
        cluster.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_cluster(_embedded_cluster):
    """The throwaway EmbeddedCluster (None when an external test database is used)."""
    return _embedded_cluster[0]


@pytest.fixture(scope="session")
def database_url(_embedded_cluster, request: pytest.FixtureRequest) -> str:
    """A PostGIS database migrated to the latest schema."""
    from gis.db import migrate
    from gis.errors import DatabaseError

    url = _embedded_cluster[1]
    try:
        migrate.upgrade(url)
    except DatabaseError as exc:
        _unavailable(request, str(exc))
    return url


@pytest.fixture(scope="session")
def engine(database_url):
    from gis.db.session import make_engine

    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def database_named(url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``url``."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _admin_execute(request: pytest.FixtureRequest, url: str, *statements: str) -> None:
    import psycopg

    try:
        with psycopg.connect(database_named(url, "postgres"), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
    except psycopg.Error as exc:
        _unavailable(request, f"cannot create or drop a test database: {exc}")


@pytest.fixture(scope="session")
def migrated_template(_embedded_cluster, request: pytest.FixtureRequest):
    """Name of a database migrated to the latest schema and left empty, never connected to after:
    the template ``own_database_url`` copies (CREATE DATABASE ... TEMPLATE is a file copy)."""
    from gis.db import migrate
    from gis.errors import DatabaseError

    url = _embedded_cluster[1]
    name = "ioc_test_template"
    _admin_execute(
        request, url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    try:
        migrate.upgrade(database_named(url, name))
    except DatabaseError as exc:
        _unavailable(request, str(exc))
    yield name
    _admin_execute(request, url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def own_database_url(_embedded_cluster, migrated_template, request: pytest.FixtureRequest):
    """A migrated database of the test module's own (a copy of ``migrated_template``), dropped after
    the module: for modules whose assertions cover whole tables (every alert since a date, every
    post of a day, every unit near a parcel), which rows other modules committed to the session
    database would otherwise change. A module takes it by overriding ``database_url`` and ``engine``:

        @pytest.fixture(scope="module")
        def database_url(own_database_url):
            return own_database_url
    """
    url = _embedded_cluster[1]
    name = f"ioc_test_own_{uuid.uuid4().hex[:10]}"
    _admin_execute(request, url, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    yield database_named(url, name)
    _admin_execute(request, url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def own_engine(own_database_url):
    """An engine on ``own_database_url`` (a module overrides ``engine`` with it)."""
    from gis.db.session import make_engine

    eng = make_engine(own_database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine):
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            yield conn
        finally:
            trans.rollback()


@pytest.fixture
def run_ioc(database_url, tmp_path):
    """Run the real ``ioc`` command (a subprocess) against the test database."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 300,
    ):
        full_env = {
            **os.environ,
            "IOC_DATABASE_URL": database_url,
            "IOC_STATE_DIR": str(tmp_path / "state"),
        }
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "ioc.cli", *args],
            capture_output=True,
            text=True,
            env=full_env,
            input=input,
            timeout=timeout,
            cwd=REPO,
        )

    return run


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (development datasets; never copied into the repository)."""
    if not SHARED_DATA.exists():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA
