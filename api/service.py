"""Feature reads on PostGIS: :class:`FeatureService` runs the statements of :mod:`api.sql` on a
pool of :mod:`api.pools` and returns pages, single items and tiles as serialised JSON/MVT.

One service per distinct :class:`ServiceSettings` and process (:func:`get_service`): the app
and the pygeoapi plugins built from the same :class:`api.settings.ApiSettings` share it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from api.collections import BY_ID, TableInfo, inspect_collection
from api.errors import NotFoundError
from api.params import FeatureQuery
from api.pools import PoolSettings, connection, get_pool
from api.sql import CollectionSQL


@dataclass(frozen=True)
class ServiceSettings:
    """Everything that shapes a :class:`FeatureService` (its cache key)."""

    database_url: str
    pool_size: int = 8
    statement_timeout_ms: int = 30_000
    exact_count_limit: int = 200_000
    connect_timeout_s: float = 3.0
    public_url: str = ""  # prefixed to the server-relative href properties of a collection

    @classmethod
    def from_api_settings(cls, settings, database_url: str) -> ServiceSettings:
        return cls(
            database_url,
            settings.pool_size,
            settings.statement_timeout_ms,
            settings.exact_count_limit,
            settings.connect_timeout_s,
            settings.public_url(),
        )

    @classmethod
    def from_options(cls, options: dict) -> ServiceSettings:
        """From a pygeoapi provider's ``options`` (written by :mod:`api.config`)."""
        return cls(
            options["database_url"],
            int(options.get("pool_size", 8)),
            int(options.get("statement_timeout_ms", 30_000)),
            int(options.get("exact_count_limit", 200_000)),
            float(options.get("connect_timeout_s", 3.0)),
            str(options.get("public_url", "")),
        )


@dataclass
class Page:
    """One page of features as serialised JSON fragments."""

    features: list[str]
    number_returned: int
    number_matched: int | None
    has_more: bool
    last_id: Any


_INFO: dict[tuple[str, str], TableInfo] = {}


def table_info(database_url: str, collection_id: str, refresh: bool = False) -> TableInfo:
    """Cached :class:`TableInfo` of a collection (inspected once per process)."""
    key = (database_url, collection_id)
    info = _INFO.get(key)
    if info is None or refresh:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from gis.db.session import sqlalchemy_url

        engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                info = inspect_collection(conn, BY_ID[collection_id], extents=False)
        finally:
            engine.dispose()
        info.extra["estimated_at"] = time.monotonic()
        _INFO[key] = info
    return info


class FeatureService:
    """Runs :class:`CollectionSQL` statements on the connection pool of its settings."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.database_url = settings.database_url
        self.pool_settings = PoolSettings(
            settings.database_url,
            settings.pool_size,
            settings.statement_timeout_ms,
            settings.connect_timeout_s,
        )
        get_pool(self.pool_settings)  # opened now: a bad URL fails at start-up
        self.exact_count_limit = settings.exact_count_limit
        self._sql: dict[str, CollectionSQL] = {}

    @property
    def pool(self):
        """The pool of this service's settings (reopened if someone closed it)."""
        return get_pool(self.pool_settings)

    def collection(self, collection_id: str) -> CollectionSQL:
        c = self._sql.get(collection_id)
        if c is None:
            c = CollectionSQL(
                table_info(self.database_url, collection_id),
                self.exact_count_limit,
                self.settings.public_url,
            )
            self._sql[collection_id] = c
        return c

    def _estimate(self, conn, c: CollectionSQL) -> float:
        info = c.info
        if time.monotonic() - info.extra.get("estimated_at", 0) > 30:
            query, params = c.estimate()
            value = conn.execute(query, params).fetchone()
            info.estimated_rows = float(value[0]) if value and value[0] is not None else -1.0
            info.extra["estimated_at"] = time.monotonic()
        return info.estimated_rows

    def page(self, collection_id: str, q: FeatureQuery) -> Page:
        c = self.collection(collection_id)
        query, params = c.page(q)
        with connection(self.pool_settings) as conn:
            rows = conn.execute(query, params).fetchall()
            has_more = len(rows) > q.limit
            rows = rows[: q.limit]
            returned = len(rows)
            matched: int | None
            if returned < q.limit and (returned > 0 or q.offset == 0):
                matched = q.offset + returned  # the last page: exact for free
            elif not q.filtered:
                estimate = self._estimate(conn, c)
                if estimate > self.exact_count_limit:
                    matched = int(estimate)
                else:
                    cq, cp = c.count(q)
                    matched = int(conn.execute(cq, cp).fetchone()[0])
            else:
                cq, cp = c.count(q)
                n = int(conn.execute(cq, cp).fetchone()[0])
                matched = n if n <= self.exact_count_limit else None
        return Page(
            features=[r[1] for r in rows],
            number_returned=returned,
            number_matched=matched,
            has_more=has_more,
            last_id=rows[-1][0] if rows else None,
        )

    def matched(self, collection_id: str, q: FeatureQuery) -> int | None:
        """numberMatched before the rows are read: the planner's estimate on large unfiltered
        tables, else an exact count (capped at ``exact_count_limit`` when filtered)."""
        c = self.collection(collection_id)
        with connection(self.pool_settings) as conn:
            if not q.filtered:
                estimate = self._estimate(conn, c)
                if estimate > self.exact_count_limit:
                    return int(estimate)
            cq, cp = c.count(q)
            n = int(conn.execute(cq, cp).fetchone()[0])
        return n if n <= self.exact_count_limit else None

    def stream(self, collection_id: str, q: FeatureQuery) -> Iterator[tuple[Any, str]]:
        """(id, feature JSON) rows as PostgreSQL sends them (libpq single-row mode), holding one
        pooled connection only while the response is being written; ``limit + 1`` rows."""
        c = self.collection(collection_id)
        query, params = c.page(q)
        with connection(self.pool_settings) as conn:
            yield from conn.cursor().stream(query, params)

    def item(self, collection_id: str, identifier: str, q: FeatureQuery) -> str:
        c = self.collection(collection_id)
        key: Any = identifier
        if c.info.id_type in ("integer", "bigint", "smallint"):
            try:
                key = int(identifier)
            except ValueError:
                raise NotFoundError(
                    f"No item '{identifier[:80]}' in collection {collection_id}."
                ) from None
            if not -(2**63) <= key < 2**63:
                raise NotFoundError(f"No item '{identifier[:80]}' in collection {collection_id}.")
        query, params = c.item(key, q)
        with connection(self.pool_settings) as conn:
            row = conn.execute(query, params).fetchone()
        if row is None:
            raise NotFoundError(f"No item '{identifier[:80]}' in collection {collection_id}.")
        return row[0]

    def tile(self, collection_id: str, z: int, x: int, y: int) -> bytes:
        c = self.collection(collection_id)
        query, params = c.tile(z, x, y)
        with connection(self.pool_settings) as conn:
            row = conn.execute(query, params).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""


_SERVICES: dict[ServiceSettings, FeatureService] = {}
_SERVICES_LOCK = threading.Lock()


def get_service(settings: ServiceSettings) -> FeatureService:
    """The process's :class:`FeatureService` for exactly these settings."""
    with _SERVICES_LOCK:
        service = _SERVICES.get(settings)
        if service is None:
            service = FeatureService(settings)
            _SERVICES[settings] = service
        return service
