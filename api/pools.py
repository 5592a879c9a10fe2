"""PostgreSQL connection pools of the API (psycopg_pool), one per distinct set of settings.

A pool is identified by everything that shapes it -- database URL, size, statement timeout --
so two callers asking for different sizes or timeouts get different pools instead of whichever
asked first fixing them for both. Users hold the settings, not the pool: a pool closed by
:func:`close_pools` is reopened on the next :func:`get_pool`. The app and the pygeoapi plugins it configures ask with the
same settings (they come from one :class:`api.settings.ApiSettings`), so they share one pool.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

from psycopg_pool import ConnectionPool, PoolTimeout


@dataclass(frozen=True)
class PoolSettings:
    database_url: str
    size: int = 8
    statement_timeout_ms: int = 30_000
    #: seconds a request waits for a connection (or for one to be made) before its 503; short so
    #: that during a database outage clients hear 503 at once rather than hang
    connect_timeout_s: float = 3.0


_POOLS: dict[PoolSettings, ConnectionPool] = {}
_LOCK = threading.Lock()


def get_pool(settings: PoolSettings) -> ConnectionPool:
    """The process's pool for exactly these settings (created on first use)."""
    with _LOCK:
        pool = _POOLS.get(settings)
        if pool is None or pool.closed:
            pool = ConnectionPool(
                settings.database_url,
                min_size=1,
                max_size=settings.size,
                kwargs={
                    "autocommit": True,
                    "options": f"-c statement_timeout={int(settings.statement_timeout_ms)} -c jit=off",
                    "application_name": "ioc-api",
                    "connect_timeout": max(1, int(settings.connect_timeout_s)),
                },
                timeout=settings.connect_timeout_s,
                open=True,
                name="ioc-api",
            )
            _POOLS[settings] = pool
        return pool


def discard_pool(settings: PoolSettings, pool: ConnectionPool) -> None:
    """Drop ``pool`` after it could not hand out a connection in time: its reconnection back-off
    grows to tens of seconds during an outage (a 30 s outage kept items pages failing 27 s after
    the database came back), while a new pool connects at the next request."""
    with _LOCK:
        if _POOLS.get(settings) is pool:
            del _POOLS[settings]
        else:
            pool = None
    if pool is not None:
        pool.close(timeout=0)


@contextlib.contextmanager
def connection(settings: PoolSettings):
    """A connection from the pool of ``settings`` (as ``pool.connection()``); a pool that could
    not hand one out in time is replaced, so the first request after an outage connects anew."""
    pool = get_pool(settings)
    try:
        conn = pool.getconn()
    except PoolTimeout:
        discard_pool(settings, pool)
        raise
    try:
        with conn:
            yield conn
    finally:
        pool.putconn(conn)


def close_pools(database_url: str | None = None) -> None:
    """Close the process's pools of ``database_url`` (every pool when None): tests dropping a
    database, shutdown. A later :func:`get_pool` opens a new one."""
    with _LOCK:
        for key in [k for k in _POOLS if database_url is None or k.database_url == database_url]:
            _POOLS.pop(key).close()
