"""The SQL of the feature routes, built by :class:`CollectionSQL` (pure: each method returns a
``psycopg.sql`` statement and its parameters; nothing here touches a connection).

How it stays fast on millions of rows:

- GeoJSON is built inside PostGIS (``ST_AsGeoJSON`` with integer SRIDs, string concatenation
  of already-serialised JSON); Python never decodes a geometry.
- Keyset paging when the order is the primary key (``id > last``), so deep pages reached
  through ``rel=next`` links cost the same as the first; an explicit deep ``offset`` on the key
  skips index entries only, and other offsets skip rows before any serialisation
  (``MATERIALIZED`` page CTE).
- Counts stop at ``exact_count_limit`` rows; the row estimate comes from ``pg_class``.
- Vector tiles are one ``ST_AsMVT`` query with integer SRIDs and per-zoom simplification, on the
  stored EPSG:3857 copy where there is one.
- CRS changes go through :func:`api.crs.transform_expr` (the pinned VN-2000 transformation).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from api.collections import TableInfo
from api.cql import Compiler
from api.crs import GEOGRAPHIC, precision, transform_expr
from api.errors import InvalidParameterError
from api.params import FeatureQuery


class CollectionSQL:
    """SQL builders of one collection (pure: they return SQL and parameters)."""

    def __init__(
        self, info: TableInfo, exact_count_limit: int = 200_000, public_url: str = ""
    ) -> None:
        self.info = info
        self.public_url = public_url.rstrip("/")
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
        if q.out_srid in (4326, 3857) and "geom_webmercator" in self.info.extra.get(
            "geometry_columns", ()
        ):
            # the stored EPSG:3857 copy (already through the pinned datum shift): inverse
            # Mercator is several times cheaper than the 7-parameter transformation
            g = transform_expr(
                sql.SQL("{}.geom_webmercator").format(sql.Identifier(alias)), 3857, q.out_srid
            )
        else:
            g = transform_expr(
                sql.SQL("{}.{}").format(sql.Identifier(alias), self.geom), self.srid, q.out_srid
            )
        if q.out_flip:
            g = sql.SQL("ST_FlipCoordinates({})").format(g)
        # options 0: no "crs" member (RFC 7946; the CRS is in Content-Crs), and no lookup of the
        # SRID in spatial_ref_sys, which lacks some advertised CRSs (EPSG:9209 on PostGIS 3.3)
        return sql.SQL("COALESCE(ST_AsGeoJSON({}, {}, 0), 'null')").format(
            g, sql.Literal(precision(q.out_srid))
        )

    def properties_json(self, q: FeatureQuery, alias: str = "t") -> sql.Composable:
        names = q.properties if q.properties is not None else self.info.properties
        if not names:
            return sql.SQL("'{}'")

        def col(n: str) -> sql.Composable:
            c = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(n))
            if n in self.spec.href_properties:  # a server-relative path, served absolute
                return sql.SQL("{} || {} AS {}").format(
                    sql.Literal(self.public_url), c, sql.Identifier(n)
                )
            return c

        cols = sql.SQL(", ").join(col(n) for n in names)
        # row_to_json of a sub-row keeps the column names and is faster than json_build_object
        return sql.SQL("row_to_json((SELECT r FROM (SELECT {}) r))::text").format(cols)

    def feature_text(self, q: FeatureQuery, alias: str = "t") -> sql.Composable:
        return sql.SQL(
            '\'{{"type":"Feature","id":\' || to_json({a}.{id})::text || '
            "',\"geometry\":' || {g} || ',\"properties\":' || {p} || '}}'"
        ).format(
            a=sql.Identifier(alias),
            id=self.id,
            g=self.geometry_json(q, alias),
            p=self.properties_json(q, alias),
        )

    def where(self, q: FeatureQuery, params: list[Any], with_cursor: bool = True) -> sql.Composable:
        """`` WHERE ...`` of the query's bbox, datetime, equalities, filter and cursor; the
        values are appended to ``params`` (never formatted into the SQL)."""
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
                    env, sql.Literal(0.01 if q.bbox_srid in GEOGRAPHIC else 1000.0)
                )
            clauses.append(sql.SQL("{} && {}").format(self.geom, self.to_storage(env, q.bbox_srid)))
        if q.datetime_ is not None:
            column = self.spec.time_column
            if column is None:
                raise InvalidParameterError(
                    "datetime cannot apply: this collection has no time property."
                )
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
                self.spec.geom_column,
                self.srid,
                filter_srid=q.filter_srid,
                flip=q.filter_flip,
                to_storage=self.to_storage,
            )
            clause = compiler.compile(q.filter_ast)
            clauses.append(clause)
            params.extend(compiler.params)
        if with_cursor and q.after is not None:
            clauses.append(
                sql.SQL("{} {} %s").format(self.id, sql.SQL("<" if q.descending else ">"))
            )
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

        terms = [
            sql.SQL("{} {}").format(col(c), sql.SQL("ASC" if asc else "DESC"))
            for c, asc in q.sortby
        ]
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
            desc = q.descending
            inner_params: list[Any] = []
            inner_where = self.where(q, inner_params)
            start = sql.SQL(
                "(SELECT {id} FROM {rel}{where} ORDER BY {id} {dir} OFFSET %s LIMIT 1)"
            ).format(
                id=self.id, rel=self.rel, where=inner_where, dir=sql.SQL("DESC" if desc else "ASC")
            )
            bound = sql.SQL("{} {} {}").format(self.id, sql.SQL("<=" if desc else ">="), start)
            where = (where + sql.SQL(" AND ") + bound) if params else (sql.SQL(" WHERE ") + bound)
            params = params + inner_params + [q.offset]
            offset = 0
        query = sql.SQL(
            "WITH page AS MATERIALIZED (SELECT * FROM {rel}{where}{order} LIMIT %s OFFSET %s) "
            "SELECT {id}, {feature} FROM page t{order2}"
        ).format(
            rel=self.rel,
            where=where,
            order=self.order_by(q),
            id=self.id,
            feature=self.feature_text(q),
            order2=self.order_by(q, alias="t"),
        )
        params.extend([q.limit + 1, offset])
        return query, params

    def count(self, q: FeatureQuery) -> tuple[sql.Composable, list[Any]]:
        params: list[Any] = []
        where = self.where(q, params, with_cursor=False)
        query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {rel}{where} LIMIT %s) s").format(
            rel=self.rel, where=where
        )
        params.append(self.exact_count_limit + 1)
        return query, params

    def item(self, identifier: Any, q: FeatureQuery) -> tuple[sql.Composable, list[Any]]:
        query = sql.SQL("SELECT {feature} FROM {rel} t WHERE t.{id} = %s").format(
            feature=self.feature_text(q), rel=self.rel, id=self.id
        )
        return query, [identifier]

    def estimate(self) -> tuple[sql.Composable, list[Any]]:
        return sql.SQL("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)"), [
            self.info.base_table or self.spec.relation
        ]

    def tile(self, z: int, x: int, y: int) -> tuple[sql.Composable, list[Any]]:
        """One Mapbox vector tile (WebMercatorQuad z/x/y) of the collection."""
        if self.geom is None:
            raise InvalidParameterError("This collection has no geometry to tile.")
        cell = 40075016.685578488 / (4096 * 2**z)  # metres per tile-extent unit
        props = [c for c in (self.spec.tile_properties or ()) if c in self.info.columns]
        cols = sql.SQL("").join(sql.SQL(", t.{}").format(sql.Identifier(c)) for c in props)
        if "geom_webmercator" in self.info.extra.get("geometry_columns", ()):
            # stored EPSG:3857 copy (migration 0005): no reprojection per request
            g3857 = sql.SQL("t.geom_webmercator")
            if z < 14:
                g3857 = sql.SQL("ST_Simplify({}, {}, true)").format(
                    g3857, sql.Literal(round(cell / 2, 6))
                )
            return self._tile_sql(g3857, z, x, y, cell, cols)
        g = sql.SQL("t.{}").format(self.geom)
        if z < 14:
            # simplify in the storage CRS before reprojecting: half a tile cell
            tol = cell / 2 if self.srid not in GEOGRAPHIC else cell / 2 / 111_320
            g = sql.SQL("ST_Simplify({}, {}, true)").format(g, sql.Literal(round(tol, 9)))
        return self._tile_sql(transform_expr(g, self.srid, 3857), z, x, y, cell, cols)

    def _tile_sql(
        self, g3857: sql.Composable, z: int, x: int, y: int, cell: float, cols: sql.Composable
    ) -> tuple[sql.Composable, list[Any]]:
        env_storage = transform_expr(sql.SQL("ST_TileEnvelope(%s, %s, %s)"), 3857, self.srid)
        min_area = ""
        if z < 14 and self.srid not in GEOGRAPHIC:
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
