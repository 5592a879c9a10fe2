"""The API's connection pools during a database outage: a request hears 503 within the pool's
connect timeout instead of hanging for psycopg_pool's default 30 s."""

from __future__ import annotations

import time

import psycopg
import pytest

from api.errors import status_of
from api.pools import PoolSettings, close_pools, get_pool
from tests.api.conftest import _free_port


def test_unreachable_database_gives_a_503_error_within_the_connect_timeout():
    url = f"postgresql://ioc@127.0.0.1:{_free_port()}/ioc"  # nothing listens there
    pool = get_pool(PoolSettings(url, size=2, connect_timeout_s=1.0))
    try:
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as caught, pool.connection():
            pass
        waited = time.monotonic() - started
    finally:
        close_pools(url)
    assert waited < 5, f"waited {waited:.1f} s for a connection"
    assert status_of(caught.value) == 503


def test_pools_differ_by_connect_timeout():
    url = f"postgresql://ioc@127.0.0.1:{_free_port()}/ioc"
    try:
        assert get_pool(PoolSettings(url, connect_timeout_s=1.0)) is not get_pool(
            PoolSettings(url, connect_timeout_s=2.0)
        )
    finally:
        close_pools(url)


def test_a_pool_that_timed_out_is_replaced_so_the_next_request_connects_at_once(database_url):
    """A 30 s outage left items pages failing 27 s after the database was back: the pool's
    reconnection back-off had grown. Now the timed-out pool is dropped and the next request
    gets a new pool that connects at once."""
    from api.pools import connection

    closed_port = f"postgresql://ioc@127.0.0.1:{_free_port()}/ioc"
    down = PoolSettings(closed_port, size=2, connect_timeout_s=1.0)
    first = get_pool(down)
    with pytest.raises(psycopg.OperationalError), connection(down):
        pass
    assert first.closed and get_pool(down) is not first  # replaced, not reused
    close_pools(closed_port)

    up = PoolSettings(database_url, size=2, connect_timeout_s=1.0)
    try:
        started = time.monotonic()
        with connection(up) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert time.monotonic() - started < 5
    finally:
        close_pools(database_url)
