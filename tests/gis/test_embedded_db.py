"""Lifecycle of the embedded PostGIS through the real `ioc db` commands."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gis.db.embedded import EmbeddedCluster, find_pg_bindir
from gis.errors import DatabaseError

pytestmark = [pytest.mark.postgis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_dir():
    try:
        find_pg_bindir()
    except DatabaseError as exc:
        pytest.skip(str(exc))
    path = Path(tempfile.mkdtemp(prefix="ioc-db-test-"))
    os.chmod(path, 0o755)
    yield path
    cluster = EmbeddedCluster(path)
    try:
        cluster.stop()
    except DatabaseError:
        pass
    subprocess.run(["rm", "-rf", str(path)], check=False)


def ioc(state_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "IOC_DATABASE_URL"}
    full_env.update({"IOC_STATE_DIR": str(state_dir), **env})
    return subprocess.run(
        [sys.executable, "-m", "ioc.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=180,
    )


def server_pids(data_dir: Path) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-f", f"postgres.*-D {data_dir}"], capture_output=True, text=True
    )
    return [int(p) for p in out.stdout.split()]


def test_up_twice_status_url_down(state_dir: Path) -> None:
    first = ioc(state_dir, "db", "up")
    assert first.returncode == 0, first.stderr
    assert "revision" in first.stdout
    second = ioc(state_dir, "db", "up")
    assert second.returncode == 0, second.stderr

    status = ioc(state_dir, "db", "status")
    assert status.returncode == 0 and "running" in status.stdout

    url = ioc(state_dir, "db", "url").stdout.strip()
    assert url.startswith("postgresql://")
    psql = subprocess.run(
        [
            "psql",
            url,
            "-tAc",
            "SELECT postgis_lib_version() IS NOT NULL, count(*) FROM land_use_codes",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert psql.returncode == 0, psql.stderr
    has_postgis, codes = psql.stdout.strip().split("|")
    assert has_postgis == "t" and int(codes) > 50

    data_dir = state_dir / "postgres" / "data"
    assert server_pids(data_dir)
    down = ioc(state_dir, "db", "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not server_pids(data_dir)
    stopped = ioc(state_dir, "db", "status")
    assert stopped.returncode == 1 and "stopped" in stopped.stdout
    assert ioc(state_dir, "db", "down").returncode == 0  # harmless when already down


def test_crashed_cluster_is_reported_not_reused(state_dir: Path) -> None:
    assert ioc(state_dir, "db", "up").returncode == 0
    cluster = EmbeddedCluster(state_dir)
    pid = cluster.status().pid
    os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        if not cluster.status().running:
            break
        time.sleep(0.1)
    # children may linger a moment after the postmaster dies
    time.sleep(1.0)
    status = ioc(state_dir, "db", "status")
    assert status.returncode == 1 and "crashed" in status.stdout
    up = ioc(state_dir, "db", "up")
    assert up.returncode == 1  # a failure, not bad input (exit 2)
    assert "crashed" in up.stderr and "--recover" in up.stderr
    assert len(up.stderr.strip().splitlines()) == 1
    recovered = ioc(state_dir, "db", "up", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    assert ioc(state_dir, "db", "down").returncode == 0


def test_port_already_taken(state_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ioc(state_dir, "db", "up", IOC_DB_PORT=str(port))
    assert result.returncode == 2
    assert f"Port {port}" in result.stderr and "already in use" in result.stderr


def test_state_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = ioc(blocker / "state", "db", "up")
    assert result.returncode == 2
    assert "not writable" in result.stderr and "IOC_STATE_DIR" in result.stderr


def test_half_initialised_cluster_is_reported(state_dir: Path) -> None:
    data = state_dir / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    result = ioc(state_dir, "db", "up")
    assert result.returncode == 1
    assert "half-initialised" in result.stderr


def test_external_database_url_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = ioc(tmp_path, "db", "up", IOC_DATABASE_URL=f"postgresql://u:secret@127.0.0.1:{port}/x")
    assert result.returncode == 1  # unreachable: a failure; a malformed URL: a user error
    assert "Cannot connect" in result.stderr and "secret" not in result.stderr
    wrong = ioc(tmp_path, "db", "status", IOC_DATABASE_URL="mysql://x@localhost/db")
    assert wrong.returncode == 2 and "postgresql://" in wrong.stderr
