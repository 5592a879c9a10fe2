"""A fast PostGIS provider for pygeoapi (feature and vector-tile plugins).

What it does differently from pygeoapi's stock PostgreSQL provider:

- GeoJSON is built inside PostGIS (``ST_AsGeoJSON`` with integer SRIDs, string concatenation
  of already-serialised JSON) and streamed to the client; Python never decodes a geometry.
- Paging follows keyset cursors when the order is the primary key (``id > last``), so deep
  pages reached through ``rel=next`` links cost the same as the first; explicit ``offset`` skips
  rows before any serialisation (``MATERIALIZED`` page CTE).
- ``numberMatched`` is cheap: the planner's row estimate (``pg_class.reltuples``) on large
  unfiltered tables, an exact count capped at ``exact_count_limit`` rows when filtered.
- A single item is one query; vector tiles are one ``ST_AsMVT`` query with integer SRIDs and
  per-zoom simplification.
- VN-2000 <-> WGS 84 goes through the pinned SRIDs of migration 0005 (7-parameter
  transformation of Decision 05/2007).

What it deliberately does not do: write arbitrary features (only the review fields named by
the collection spec are writable, through :mod:`api.review`), or expose columns that are not
published (owner names).

pygeoapi configuration (``providers`` of a collection)::

    - type: feature
      name: api.provider.PostGISProvider
      data: parcels                     # collection id
      id_field: id
      options: {database_url: ${IOC_DATABASE_URL}}
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql
from psycopg_pool import ConnectionPool
from pygeoapi.models.provider.base import TileMatrixSetEnum
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    ProviderQueryError,
)
from pygeoapi.provider.base_mvt import BaseMVTProvider
from pygeoapi.provider.mvt_postgresql import MVTPostgreSQLProvider
from pygeoapi.provider.tile import ProviderTileNotFoundError

from api.collections import BY_ID, PINNED, TableInfo, inspect_collection, pinned_srid
from api.cql import Compiler
from api.errors import InvalidParameterError, NotFoundError

# -- CRS ----------------------------------------------------------------------------------
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
SUPPORTED_CRS = {
    CRS84: 4326,
    "http://www.opengis.net/def/crs/EPSG/0/4326": 4326,
    "http://www.opengis.net/def/crs/EPSG/0/3405": 3405,
    "http://www.opengis.net/def/crs/EPSG/0/5897": 5897,
    "http://www.opengis.net/def/crs/EPSG/0/9209": 9209,
    "http://www.opengis.net/def/crs/EPSG/0/3857": 3857,
}
# EPSG:4326 is latitude first; CRS84 and the projected CRSs are easting first
LAT_FIRST = {"http://www.opengis.net/def/crs/EPSG/0/4326"}


def crs_uri(srid: int) -> str:
    return f"http://www.opengis.net/def/crs/EPSG/0/{srid}"


def parse_crs(value: str | None, what: str = "crs") -> tuple[str, int, bool]:
    """(uri, srid, latitude-first) of a CRS parameter; CRS84 when absent."""
    if value is None:
        return CRS84, 4326, False
    v = value.strip().strip("[]")
    aliases = {"CRS84": CRS84, "OGC:CRS84": CRS84, "urn:ogc:def:crs:OGC:1.3:CRS84": CRS84}
    if v in aliases:
        v = aliases[v]
    elif v.upper().startswith("EPSG:"):
        v = crs_uri(int(v[5:])) if v[5:].isdigit() else v
    if v not in SUPPORTED_CRS:
        supported = ", ".join(sorted(SUPPORTED_CRS))
        raise InvalidParameterError(f"{what} '{value[:80]}' is not supported; use one of {supported}.")
    return v, SUPPORTED_CRS[v], v in LAT_FIRST


def transform_expr(expr: sql.Composable, src: int, dst: int) -> sql.Composable:
    """``expr`` (SRID ``src``) in SRID ``dst``, crossing datums through the pinned SRIDs."""
    if src == dst:
        return expr
    if src in PINNED and dst not in PINNED:
        return sql.SQL("ST_Transform(ST_SetSRID({}, {}), {})").format(
            expr, sql.Literal(pinned_srid(src)), sql.Literal(dst))
    if dst in PINNED and src not in PINNED:
        return sql.SQL("ST_SetSRID(ST_Transform({}, {}), {})").format(
            expr, sql.Literal(pinned_srid(dst)), sql.Literal(dst))
    return sql.SQL("ST_Transform({}, {})").format(expr, sql.Literal(dst))


def _precision(srid: int) -> int:
    return 7 if srid in (4326, 4756) else 2


# -- database -----------------------------------------------------------------------------
_POOLS: dict[str, ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()


def get_pool(database_url: str, size: int = 8, statement_timeout_ms: int = 30_000) -> ConnectionPool:
    """One connection pool per database URL and process."""
    with _POOLS_LOCK:
        pool = _POOLS.get(database_url)
        if pool is None:
            pool = ConnectionPool(
                database_url,
                min_size=1,
                max_size=size,
                kwargs={
                    "autocommit": True,
                    "options": f"-c statement_timeout={int(statement_timeout_ms)} -c jit=off",
                    "application_name": "ioc-api",
                },
                open=True,
                name="ioc-api",
            )
            _POOLS[database_url] = pool
        return pool


def close_pools() -> None:
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


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


# -- queries ------------------------------------------------------------------------------
@dataclass
class FeatureQuery:
    """A parsed, validated items request."""

    limit: int = 100
    offset: int = 0
    after: Any = None  # keyset cursor: last id of the previous page
    bbox: list[float] | None = None
    bbox_srid: int = 4326
    bbox_flip: bool = False
    datetime_: tuple[Any, Any] | None = None  # (start, end); None = open
    equals: dict[str, str] = field(default_factory=dict)
    filter_ast: Any = None
    filter_srid: int = 4326
    filter_flip: bool = False
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (column, ascending)
    properties: list[str] | None = None
    skip_geometry: bool = False
    out_srid: int = 4326
    out_flip: bool = False

    @property
    def filtered(self) -> bool:
        return bool(self.bbox or self.datetime_ or self.equals or self.filter_ast is not None)

    @property
    def keyset(self) -> bool:
        return not self.sortby or (len(self.sortby) == 1 and self.sortby[0][0] == "id")


@dataclass
class Page:
    """One page of features as serialised JSON fragments."""

    features: list[str]
    number_returned: int
    number_matched: int | None
    has_more: bool
    last_id: Any


def encode_cursor(offset: int, last_id: Any, descending: bool = False) -> str:
    raw = json.dumps([offset, last_id, int(descending)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, Any, bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        offset, last_id, desc = json.loads(raw)
        if not isinstance(offset, int) or offset < 0 or not isinstance(last_id, int | str):
            raise ValueError
        return offset, last_id, bool(desc)
    except Exception:  # noqa: BLE001 - any malformed token
        raise InvalidParameterError("cursor is not a cursor this server issued.") from None


class CollectionSQL:
    """SQL builders of one collection (pure: they return SQL and parameters)."""

    def __init__(self, info: TableInfo, exact_count_limit: int = 200_000) -> None:
        self.info = info
        self.spec = info.spec
        self.rel = sql.Identifier(self.spec.relation)
        self.id = sql.Identifier(self.spec.id_column)
        self.geom = sql.Identifier(self.spec.geom_column) if self.spec.geom_column else None
        self.srid = info.srid or 4326
        self.exact_count_limit = exact_count_limit

    # -- pieces ---------------------------------------------------------------------------
    def to_storage(self, expr: sql.Composable, srid: int) -> sql.Composable:
        return transform_expr(expr, srid, self.srid)

    def geometry_json(self, q: FeatureQuery, alias: str = "t") -> sql.Composable:
        if self.geom is None or q.skip_geometry:
            return sql.SQL("'null'")
        if q.out_srid in (4326, 3857) and "geom_webmercator" in self.info.extra.get("geometry_columns", ()):
            # the stored EPSG:3857 copy (already through the pinned datum shift): inverse
            # Mercator is several times cheaper than the 7-parameter transformation
            g = transform_expr(sql.SQL("{}.geom_webmercator").format(sql.Identifier(alias)), 3857, q.out_srid)
        else:
            g = transform_expr(sql.SQL("{}.{}").format(sql.Identifier(alias), self.geom), self.srid, q.out_srid)
        if q.out_flip:
            g = sql.SQL("ST_FlipCoordinates({})").format(g)
        return sql.SQL("COALESCE(ST_AsGeoJSON({}, {}), 'null')").format(g, sql.Literal(_precision(q.out_srid)))

    def properties_json(self, q: FeatureQuery, alias: str = "t") -> sql.Composable:
        names = q.properties if q.properties is not None else self.info.properties
        if not names:
            return sql.SQL("'{}'")
        cols = sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(n)) for n in names)
        # row_to_json of a sub-row keeps the column names and is faster than json_build_object
        return sql.SQL("row_to_json((SELECT r FROM (SELECT {}) r))::text").format(cols)

    def feature_text(self, q: FeatureQuery, alias: str = "t") -> sql.Composable:
        return sql.SQL(
            "'{{\"type\":\"Feature\",\"id\":' || to_json({a}.{id})::text || "
            "',\"geometry\":' || {g} || ',\"properties\":' || {p} || '}}'"
        ).format(a=sql.Identifier(alias), id=self.id, g=self.geometry_json(q, alias),
                 p=self.properties_json(q, alias))

    def where(self, q: FeatureQuery, params: list[Any], with_cursor: bool = True) -> sql.Composable:
        clauses: list[sql.Composable] = []
        if q.bbox:
            if self.geom is None:
                raise InvalidParameterError("bbox cannot apply: this collection has no geometry.")
            x1, y1, x2, y2 = q.bbox
            if q.bbox_flip:
                x1, y1, x2, y2 = y1, x1, y2, x2
            env = sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, {})").format(sql.Literal(q.bbox_srid))
            params.extend([x1, y1, x2, y2])
            if q.bbox_srid != self.srid:
                env = sql.SQL("ST_Segmentize({}, {})").format(
                    env, sql.Literal(0.01 if q.bbox_srid in (4326, 4756) else 1000.0))
            clauses.append(sql.SQL("{} && {}").format(self.geom, self.to_storage(env, q.bbox_srid)))
        if q.datetime_ is not None:
            column = self.spec.time_column
            if column is None:
                raise InvalidParameterError("datetime cannot apply: this collection has no time property.")
            start, end = q.datetime_
            col = sql.Identifier(column)
            if start is not None and start == end:
                clauses.append(sql.SQL("{} = %s").format(col))
                params.append(start)
            else:
                if start is not None:
                    clauses.append(sql.SQL("{} >= %s").format(col))
                    params.append(start)
                if end is not None:
                    clauses.append(sql.SQL("{} <= %s").format(col))
                    params.append(end)
        for name, value in q.equals.items():
            clauses.append(sql.SQL("CAST({} AS text) = %s").format(sql.Identifier(name)))
            params.append(value)
        if q.filter_ast is not None:
            compiler = Compiler(
                {**self.info.columns, self.spec.id_column: self.info.id_type},
                self.spec.geom_column, self.srid,
                filter_srid=q.filter_srid, flip=q.filter_flip, to_storage=self.to_storage,
            )
            clause = compiler.compile(q.filter_ast)
            clauses.append(clause)
            params.extend(compiler.params)
        if with_cursor and q.after is not None:
            desc = bool(q.sortby) and not q.sortby[0][1]
            clauses.append(sql.SQL("{} {} %s").format(self.id, sql.SQL("<" if desc else ">")))
            params.append(q.after)
        if not clauses:
            return sql.SQL("")
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)

    def order_by(self, q: FeatureQuery, alias: str | None = None) -> sql.Composable:
        """ORDER BY the requested keys, then the id (a total order for paging); columns
        qualified with ``alias`` when given."""
        def col(name: str) -> sql.Composable:
            ident = sql.Identifier(name)
            return sql.SQL("{}.{}").format(sql.Identifier(alias), ident) if alias else ident

        terms = [sql.SQL("{} {}").format(col(c), sql.SQL("ASC" if asc else "DESC"))
                 for c, asc in q.sortby]
        if not any(c == self.spec.id_column for c, _ in q.sortby):
            terms.append(sql.SQL("{} ASC").format(col(self.spec.id_column)))
        return sql.SQL(" ORDER BY ") + sql.SQL(", ").join(terms)

    # -- statements -----------------------------------------------------------------------
    def page(self, q: FeatureQuery) -> tuple[sql.Composable, list[Any]]:
        """Features of one page plus one look-ahead row (``limit + 1``)."""
        params: list[Any] = []
        where = self.where(q, params)
        offset = 0 if q.after is not None else q.offset
        if q.after is None and q.offset >= 1000 and q.keyset:
            # deep offset on the key: skip index entries only (an index-only scan), then read
            # one page from that key on -- no skipped row is fetched or serialised
            desc = bool(q.sortby) and not q.sortby[0][1]
            inner_params: list[Any] = []
            inner_where = self.where(q, inner_params)
            start = sql.SQL("(SELECT {id} FROM {rel}{where} ORDER BY {id} {dir} OFFSET %s LIMIT 1)").format(
                id=self.id, rel=self.rel, where=inner_where, dir=sql.SQL("DESC" if desc else "ASC"))
            bound = sql.SQL("{} {} {}").format(self.id, sql.SQL("<=" if desc else ">="), start)
            where = (where + sql.SQL(" AND ") + bound) if params else (sql.SQL(" WHERE ") + bound)
            params = params + inner_params + [q.offset]
            offset = 0
        query = sql.SQL(
            "WITH page AS MATERIALIZED (SELECT * FROM {rel}{where}{order} LIMIT %s OFFSET %s) "
            "SELECT {id}, {feature} FROM page t{order2}"
        ).format(rel=self.rel, where=where, order=self.order_by(q), id=self.id,
                 feature=self.feature_text(q), order2=self.order_by(q, alias="t"))
        params.extend([q.limit + 1, offset])
        return query, params

    def count(self, q: FeatureQuery) -> tuple[sql.Composable, list[Any]]:
        params: list[Any] = []
        where = self.where(q, params, with_cursor=False)
        query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {rel}{where} LIMIT %s) s").format(
            rel=self.rel, where=where)
        params.append(self.exact_count_limit + 1)
        return query, params

    def item(self, identifier: Any, q: FeatureQuery) -> tuple[sql.Composable, list[Any]]:
        query = sql.SQL("SELECT {feature} FROM {rel} t WHERE t.{id} = %s").format(
            feature=self.feature_text(q), rel=self.rel, id=self.id)
        return query, [identifier]

    def estimate(self) -> tuple[sql.Composable, list[Any]]:
        return sql.SQL("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)"), [
            self.info.base_table or self.spec.relation]

    def tile(self, z: int, x: int, y: int) -> tuple[sql.Composable, list[Any]]:
        """One Mapbox vector tile (WebMercatorQuad z/x/y) of the collection."""
        if self.geom is None:
            raise InvalidParameterError("This collection has no geometry to tile.")
        cell = 40075016.685578488 / (4096 * 2 ** z)  # metres per tile-extent unit
        props = [c for c in (self.spec.tile_properties or ()) if c in self.info.columns]
        cols = sql.SQL("").join(sql.SQL(", t.{}").format(sql.Identifier(c)) for c in props)
        if "geom_webmercator" in self.info.extra.get("geometry_columns", ()):
            # stored EPSG:3857 copy (migration 0005): no reprojection per request
            g3857 = sql.SQL("t.geom_webmercator")
            if z < 14:
                g3857 = sql.SQL("ST_Simplify({}, {}, true)").format(g3857, sql.Literal(round(cell / 2, 6)))
            return self._tile_sql(g3857, z, x, y, cell, cols)
        g = sql.SQL("t.{}").format(self.geom)
        if z < 14:
            # simplify in the storage CRS before reprojecting: half a tile cell
            tol = cell / 2 if self.srid not in (4326, 4756) else cell / 2 / 111_320
            g = sql.SQL("ST_Simplify({}, {}, true)").format(g, sql.Literal(round(tol, 9)))
        return self._tile_sql(transform_expr(g, self.srid, 3857), z, x, y, cell, cols)

    def _tile_sql(self, g3857: sql.Composable, z: int, x: int, y: int, cell: float,
                  cols: sql.Composable) -> tuple[sql.Composable, list[Any]]:
        env_storage = transform_expr(sql.SQL("ST_TileEnvelope(%s, %s, %s)"), 3857, self.srid)
        min_area = ""
        if z < 14 and self.srid not in (4326, 4756):
            min_area = f" AND ST_Area(t.{self.spec.geom_column}) > {cell * cell:.3f}"
        # the CTE keeps PostgreSQL from evaluating ST_AsMVTGeom twice (filter + output);
        # ST_AsMVT skips rows whose clipped geometry is NULL
        query = sql.SQL(
            "WITH m AS MATERIALIZED ("
            "SELECT ST_AsMVTGeom({g}, ST_TileEnvelope(%s, %s, %s), 4096, 64, true) AS geom, "
            "t.{id} AS id{cols} FROM {rel} t WHERE t.{gc} && {env}" + min_area + ") "
            "SELECT ST_AsMVT(m, %s, 4096, 'geom', 'id') FROM m"
        ).format(g=g3857, id=self.id, cols=cols, rel=self.rel, gc=self.geom, env=env_storage)
        return query, [z, x, y, z, x, y, self.spec.id]


class FeatureService:
    """Runs :class:`CollectionSQL` statements on a connection pool."""

    def __init__(self, database_url: str, pool_size: int = 8, statement_timeout_ms: int = 30_000,
                 exact_count_limit: int = 200_000) -> None:
        self.database_url = database_url
        self.pool = get_pool(database_url, pool_size, statement_timeout_ms)
        self.exact_count_limit = exact_count_limit
        self._sql: dict[str, CollectionSQL] = {}

    def collection(self, collection_id: str) -> CollectionSQL:
        c = self._sql.get(collection_id)
        if c is None:
            c = CollectionSQL(table_info(self.database_url, collection_id), self.exact_count_limit)
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
        with self.pool.connection() as conn:
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
        with self.pool.connection() as conn:
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
        with self.pool.connection() as conn:
            yield from conn.cursor().stream(query, params)

    def item(self, collection_id: str, identifier: str, q: FeatureQuery) -> str:
        c = self.collection(collection_id)
        key: Any = identifier
        if c.info.id_type in ("integer", "bigint", "smallint"):
            try:
                key = int(identifier)
            except ValueError:
                raise NotFoundError(f"No item '{identifier[:80]}' in collection {collection_id}.") from None
            if not -(2**63) <= key < 2**63:
                raise NotFoundError(f"No item '{identifier[:80]}' in collection {collection_id}.")
        query, params = c.item(key, q)
        with self.pool.connection() as conn:
            row = conn.execute(query, params).fetchone()
        if row is None:
            raise NotFoundError(f"No item '{identifier[:80]}' in collection {collection_id}.")
        return row[0]

    def tile(self, collection_id: str, z: int, x: int, y: int) -> bytes:
        c = self.collection(collection_id)
        query, params = c.tile(z, x, y)
        with self.pool.connection() as conn:
            row = conn.execute(query, params).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""


_SERVICES: dict[str, FeatureService] = {}


def get_service(database_url: str, **kwargs) -> FeatureService:
    service = _SERVICES.get(database_url)
    if service is None:
        service = FeatureService(database_url, **kwargs)
        _SERVICES[database_url] = service
    return service


def iter_streamed(rows: Iterator[tuple[Any, str]], limit: int, head: dict, tail_of) -> Iterator[bytes]:
    """A FeatureCollection written while the rows arrive; ``tail_of(returned, has_more, last_id)``
    gives the keys written after the features (numberReturned, links)."""
    opening = json.dumps(head, ensure_ascii=False)[:-1]
    yield (opening + (', ' if head else '') + '"features":[').encode()
    returned, has_more, last_id = 0, False, None
    chunk: list[str] = []
    size = 0
    for row_id, feature in rows:
        if returned == limit:
            has_more = True  # the look-ahead row
            break
        chunk.append(("," if returned else "") + feature)
        returned += 1
        last_id = row_id
        size += len(feature)
        if size > 256_000:
            yield "".join(chunk).encode()
            chunk, size = [], 0
    if hasattr(rows, "close"):
        rows.close()
    if chunk:
        yield "".join(chunk).encode()
    yield ("]," + json.dumps(tail_of(returned, has_more, last_id), ensure_ascii=False)[1:]).encode()


def iter_collection(page: Page, head: dict, tail: dict) -> Iterator[bytes]:
    """A FeatureCollection as byte chunks: head keys, the features, then tail keys."""
    opening = json.dumps(head, ensure_ascii=False)[:-1]
    yield (opening + (', ' if head else '') + '"features":[').encode()
    chunk: list[str] = []
    size = 0
    for i, f in enumerate(page.features):
        chunk.append(("," if i else "") + f)
        size += len(f)
        if size > 256_000:
            yield "".join(chunk).encode()
            chunk, size = [], 0
    if chunk:
        yield "".join(chunk).encode()
    closing = json.dumps(tail, ensure_ascii=False)[1:]
    yield ("]," + closing if tail else "]}").encode()


# -- pygeoapi plugins ---------------------------------------------------------------------
class PostGISProvider(BaseProvider):
    """pygeoapi feature provider over one collection of the ioc-monitor schema."""

    def __init__(self, provider_def: dict) -> None:
        super().__init__(provider_def)
        options = provider_def.get("options") or {}
        self.collection_id = provider_def["data"]
        if self.collection_id not in BY_ID:
            raise ProviderQueryError(f"unknown collection {self.collection_id}")
        self.database_url = options["database_url"]
        self.service = get_service(
            self.database_url,
            exact_count_limit=int(options.get("exact_count_limit", 200_000)),
            pool_size=int(options.get("pool_size", 8)),
        )
        self.spec = BY_ID[self.collection_id]
        self.id_field = self.spec.id_column
        self.time_field = self.spec.time_column
        self.geom_field = self.spec.geom_column
        self.get_fields()

    def get_fields(self) -> dict:
        if not self._fields:
            info = self.service.collection(self.collection_id).info
            fields = {}
            for name in info.properties:
                type_, fmt = info.json_type(name)
                fields[name] = {"type": type_} | ({"format": fmt} if fmt else {})
            self._fields = fields
        return self._fields

    def _query(self, **kw) -> FeatureQuery:
        q = FeatureQuery(limit=int(kw.get("limit") or 10), offset=int(kw.get("offset") or 0))
        bbox = kw.get("bbox") or []
        if bbox:
            q.bbox = list(bbox)[:4] if len(bbox) == 4 else [bbox[0], bbox[1], bbox[3], bbox[4]]
        dt_ = kw.get("datetime_")
        if dt_:
            q.datetime_ = parse_datetime(dt_)
        for name, value in kw.get("properties") or []:
            if name in self.fields:
                q.equals[name] = value
        q.sortby = [(s["property"], s["order"] != "-") for s in kw.get("sortby") or []]
        sel = kw.get("select_properties") or []
        q.properties = [p for p in sel if p in self.fields] if sel else None
        q.skip_geometry = bool(kw.get("skip_geometry"))
        q.filter_ast = kw.get("filterq")
        spec = kw.get("crs_transform_spec")
        if spec is not None:
            _, q.out_srid, q.out_flip = parse_crs(getattr(spec, "target_crs_uri", None))
        return q

    def query(self, offset=0, limit=10, resulttype="results", bbox=None, datetime_=None,
              properties=None, sortby=None, select_properties=None, skip_geometry=False,
              q=None, filterq=None, crs_transform_spec=None, **kwargs) -> dict:
        try:
            fq = self._query(offset=offset, limit=limit, bbox=bbox or [], datetime_=datetime_,
                             properties=properties, sortby=sortby, select_properties=select_properties,
                             skip_geometry=skip_geometry, filterq=filterq,
                             crs_transform_spec=crs_transform_spec)
            page = self.service.page(self.collection_id, fq)
        except InvalidParameterError as exc:
            raise ProviderInvalidQueryError(user_msg=str(exc)) from None
        out = {
            "type": "FeatureCollection",
            "features": [json.loads(f) for f in page.features] if resulttype != "hits" else [],
            "numberReturned": page.number_returned if resulttype != "hits" else 0,
        }
        if page.number_matched is not None:
            out["numberMatched"] = page.number_matched
        return out

    def get(self, identifier, **kwargs) -> dict:
        fq = FeatureQuery()
        spec = kwargs.get("crs_transform_spec")
        if spec is not None:
            _, fq.out_srid, fq.out_flip = parse_crs(getattr(spec, "target_crs_uri", None))
        try:
            return json.loads(self.service.item(self.collection_id, str(identifier), fq))
        except NotFoundError as exc:
            raise ProviderItemNotFoundError(user_msg=str(exc)) from None

    def __repr__(self) -> str:
        return f"<PostGISProvider> {self.collection_id}"


def parse_datetime(value: str) -> tuple[Any, Any]:
    """(start, end) of an OGC datetime parameter (instant or interval with '..' ends)."""
    from dateutil import parser as dtparser

    def one(v: str, end: bool = False):
        v = v.strip()
        if v in ("..", ""):
            return None
        try:
            parsed = dtparser.isoparse(v)
        except (ValueError, OverflowError):
            raise InvalidParameterError(
                f"datetime '{value[:60]}' is not an RFC 3339 date-time or interval.") from None
        if len(v) == 10:  # a date: the whole day
            import datetime as dt
            parsed = parsed.replace(tzinfo=dt.UTC)
            if end:
                parsed = parsed + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
        elif parsed.tzinfo is None:
            import datetime as dt
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed

    if "/" in value:
        parts = value.split("/")
        if len(parts) != 2:
            raise InvalidParameterError(f"datetime '{value[:60]}' has more than one '/'.")
        start, end = one(parts[0]), one(parts[1], end=True)
        if start is not None and end is not None and start > end:
            raise InvalidParameterError(f"datetime '{value[:60]}' ends before it starts.")
        return start, end
    instant = one(value)
    if instant is None:
        raise InvalidParameterError("datetime '..' needs an interval ('../2025-01-01').")
    if len(value.strip()) == 10:
        return instant, one(value, end=True)
    return instant, instant


class PostGISTileProvider(MVTPostgreSQLProvider):
    """pygeoapi vector-tile provider (WebMercatorQuad) over one collection."""

    def __init__(self, provider_def: dict) -> None:  # noqa: D107 - skip the stock table reflection
        BaseMVTProvider.__init__(self, provider_def)
        options = provider_def.get("options") or {}
        self.collection_id = options.get("collection") or provider_def["data"]
        self.table = self.collection_id
        self.database_url = options["database_url"]
        self.service = get_service(self.database_url)

    def get_layer(self) -> str:
        return self.collection_id

    def get_fields(self) -> dict:
        return {}

    def get_tiling_schemes(self) -> list:
        return [TileMatrixSetEnum.WEBMERCATORQUAD.value]

    def get_tiles(self, layer="default", tileset=None, z=None, y=None, x=None, format_=None):
        z, y, x = int(z), int(y), int(x)
        if tileset != "WebMercatorQuad" or not (0 <= z <= 24 and 0 <= x < 2**z and 0 <= y < 2**z):
            raise ProviderTileNotFoundError
        return self.service.tile(self.collection_id, z, x, y) or None

    def get_metadata(self, dataset, server_url, layer=None, tileset=None, metadata_format=None,
                     title=None, description=None, keywords=None, **kwargs):
        # pygeoapi passes None when no f is given: answer the default (JSON) metadata
        return super().get_metadata(dataset, server_url, layer, tileset, metadata_format or "json",
                                    title, description, keywords, **kwargs)

    def get_vendor_metadata(self, dataset, server_url, layer, tileset, title, description,
                            keywords, **kwargs) -> dict:
        """TileJSON 3.0.0."""
        spec = BY_ID[self.collection_id]
        zoom = (self.options or {}).get("zoom", {})
        return {
            "tilejson": "3.0.0",
            "name": dataset,
            "description": description,
            "tiles": [f"{server_url}/collections/{dataset}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}?f=mvt"],
            "minzoom": zoom.get("min", 0),
            "maxzoom": zoom.get("max", 22),
            "vector_layers": [{"id": dataset, "fields": {c: "" for c in spec.tile_properties}}],
        }

    def __repr__(self) -> str:
        return f"<PostGISTileProvider> {self.collection_id}"
