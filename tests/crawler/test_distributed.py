"""Distributed mode: two crawler processes share one Redis queue and dupefilter."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections import Counter

import pytest

from tests.crawler.conftest import ARTICLE_PATHS, start_crawl

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def redis_url(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_two_processes_never_fetch_a_url_twice(local_site, redis_url, tmp_path):
    procs = []
    for tag in ("a", "b"):
        state = tmp_path / tag
        state.mkdir()
        conf = {
            "base": local_site.base,
            "state_dir": str(state),
            "database_url": None,
            "job": "dist",
            "distributed": True,
            "redis_url": redis_url,
            "redis_keys": "ioc:test-dist",
            "settings": {"concurrency": 2, "concurrency_per_domain": 2},
            "scrapy": {"RETRY_ENABLED": False},
        }  # a retried 500 is a refetch by design
        procs.append(start_crawl(conf, tmp_path, tag))
    for proc in procs:
        assert proc.wait(timeout=180) == 0
    counts = Counter(h for h in local_site.hits if not h.startswith("/robots.txt"))
    fetched_twice = {path: n for path, n in counts.items() if n > 1}
    assert not fetched_twice
    assert set(counts) >= ARTICLE_PATHS  # the work was done, once
    logs = [(tmp_path / f"crawl-dist-{t}.log").read_text(errors="replace") for t in "ab"]
    assert all("scrapy_redis" in log or "Scheduler" in log for log in logs)
