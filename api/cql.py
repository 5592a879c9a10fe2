"""CQL2 (text and JSON, parsed by pygeofilter) compiled to a parameterised SQL WHERE clause.

Only queryable properties of the collection become identifiers (quoted by psycopg); every
literal becomes a bound parameter, so a filter can never inject SQL. Anything outside the
supported subset is rejected with :class:`InvalidParameterError` naming the construct, and so
is a filter larger than the configured complexity (:func:`check_complexity`: syntax-tree nodes
and nesting depth, ``IOC_API_MAX_FILTER_NODES`` / ``IOC_API_MAX_FILTER_DEPTH``) or a geometry
literal that is not a valid geometry (a self-intersecting polygon would silently match the
wrong features).

>>> from pygeofilter.parsers.cql2_text import parse
>>> c = Compiler({"land_use_code": "character varying"}, geom_column=None, storage_srid=None)
>>> c.compile(parse("land_use_code = 'LUC'")).as_string(None)
'("land_use_code" = %s)'
>>> c.params
['LUC']
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from psycopg import sql
from pygeofilter import ast, values

from api.errors import InvalidParameterError

_COMPARISON = {
    ast.Equal: "=",
    ast.NotEqual: "<>",
    ast.LessThan: "<",
    ast.LessEqual: "<=",
    ast.GreaterThan: ">",
    ast.GreaterEqual: ">=",
}

_SPATIAL = {
    ast.GeometryIntersects: "ST_Intersects",
    ast.GeometryDisjoint: "ST_Disjoint",
    ast.GeometryContains: "ST_Contains",
    ast.GeometryWithin: "ST_Within",
    ast.GeometryTouches: "ST_Touches",
    ast.GeometryCrosses: "ST_Crosses",
    ast.GeometryOverlaps: "ST_Overlaps",
    ast.GeometryEquals: "ST_Equals",
}

_ARITHMETIC = {"+": "+", "-": "-", "*": "*", "/": "/"}


def parse_filter(
    text: str | None,
    body: bytes | dict | None,
    lang: str | None,
    max_nodes: int | None = None,
    max_depth: int | None = None,
) -> ast.Node | None:
    """Parse a CQL2 filter from the ``filter`` parameter (text or JSON) or a JSON body; with
    ``max_nodes``/``max_depth``, refuse filters above that complexity."""
    from pygeofilter.parsers.cql2_json import parse as parse_json
    from pygeofilter.parsers.cql2_text import parse as parse_text

    lang = (lang or "").lower() or None
    if lang not in (None, "cql2-text", "cql2-json", "cql-text", "cql-json"):
        raise InvalidParameterError(
            f"filter-lang '{lang}' is not supported; use cql2-text or cql2-json."
        )
    if text is None and body is None:
        return None
    try:
        if text is not None:
            if lang in ("cql2-json", "cql-json") or (
                lang is None and text.lstrip().startswith("{")
            ):
                node = parse_json(json.loads(text))
            else:
                node = parse_text(text)
        else:
            data = json.loads(body) if isinstance(body, bytes | str) else body
            node = parse_json(data)
    except InvalidParameterError:
        raise
    except RecursionError:
        raise InvalidParameterError(
            "The filter is nested too deeply; use fewer parentheses or IN (...) lists."
        ) from None
    except Exception as exc:  # noqa: BLE001 - parser errors of every kind
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterError(f"The filter is not valid CQL2: {detail}") from None
    if max_nodes is not None or max_depth is not None:
        check_complexity(node, max_nodes or 10**9, max_depth or 10**9)
    return node


def _children(node: Any) -> list[Any]:
    if isinstance(node, ast.Node):
        return [c for c in node.get_sub_nodes() if c is not None]
    if isinstance(node, list | tuple):
        return list(node)
    return []


def complexity(node: Any) -> tuple[int, int]:
    """(nodes, depth) of a filter's syntax tree; a chain of the same AND or OR counts as one
    level of depth (it is compiled flat). Iterative: any depth is measured without recursion.

    >>> from pygeofilter.parsers.cql2_text import parse
    >>> complexity(parse("area = 1 OR area = 2 OR area = 3"))
    (11, 3)
    """
    nodes, deepest = 0, 0
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        nodes += 1
        deepest = max(deepest, depth)
        for child in _children(current):
            same_chain = isinstance(current, ast.And | ast.Or) and type(child) is type(current)
            stack.append((child, depth if same_chain else depth + 1))
    return nodes, deepest


def check_complexity(node: Any, max_nodes: int, max_depth: int) -> None:
    """InvalidParameterError when the filter has more nodes or nesting than allowed."""
    nodes, depth = complexity(node)
    if nodes > max_nodes:
        raise InvalidParameterError(
            f"The filter is too complex: {nodes} terms (properties, values, operators), at most "
            f"{max_nodes}; use IN (...) lists, bbox or datetime instead of long OR chains."
        )
    if depth > max_depth:
        raise InvalidParameterError(
            f"The filter is nested {depth} levels deep, at most {max_depth}."
        )


def _chain(node: Any) -> list[Any]:
    """The operands of a chain of the same AND/OR (``a OR b OR c`` -> [a, b, c]), iteratively."""
    kind = type(node)
    operands, stack = [], [node]
    while stack:
        current = stack.pop()
        if type(current) is kind:
            stack.extend([current.rhs, current.lhs])
        else:
            operands.append(current)
    return operands


def _check_rings(geometry: dict) -> None:
    """Polygon rings as written must be closed and have 4 positions or more (shapely would close
    them silently, PostGIS refuses them)."""
    kind = geometry.get("type")
    polygons = (
        [geometry.get("coordinates")]
        if kind == "Polygon"
        else geometry.get("coordinates")
        if kind == "MultiPolygon"
        else []
    )
    for polygon in polygons or []:
        for ring in polygon or []:
            if len(ring) < 4:
                raise InvalidParameterError(
                    f"The filter's polygon has a ring of {len(ring)} positions; a ring needs at "
                    "least 4, the last equal to the first."
                )
            if list(ring[0]) != list(ring[-1]):
                raise InvalidParameterError(
                    "The filter's polygon has a ring that is not closed (its last position must "
                    "equal its first)."
                )


def _valid_geometry(node: Any) -> dict:
    """The GeoJSON of a geometry literal; InvalidParameterError naming what is wrong with it."""
    import math

    import shapely
    from shapely.geometry import shape

    try:
        geometry = dict(node.geometry)
        _check_rings(geometry)
        geom = shape(geometry)
    except InvalidParameterError:
        raise
    except Exception as exc:  # noqa: BLE001 - shapely/GEOS errors of every kind
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterError(f"The filter's geometry cannot be read: {detail}.") from None
    if geom.is_empty:
        raise InvalidParameterError("The filter's geometry is empty.")
    if not all(math.isfinite(v) for v in geom.bounds):
        raise InvalidParameterError(
            "The filter's geometry has coordinates that are not finite numbers."
        )
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise InvalidParameterError(
            f"The filter's {geom.geom_type} is not a valid geometry: {reason} "
            "(rings must be closed and must not cross themselves)."
        )
    return geometry


class Compiler:
    """Compile a pygeofilter AST against one collection's queryables.

    Parameters
    ----------
    columns
        Queryable property -> PostgreSQL type.
    geom_column
        Name of the geometry column (queryable as ``geometry`` or by its name).
    storage_srid
        SRID of the geometry column.
    filter_srid
        SRID of geometry literals (``filter-crs``), 4326 for CRS84.
    flip
        Whether geometry literals come in latitude/longitude order (``EPSG:4326``).
    """

    def __init__(
        self,
        columns: dict[str, str],
        geom_column: str | None,
        storage_srid: int | None,
        filter_srid: int = 4326,
        flip: bool = False,
        to_storage=None,
    ) -> None:
        self.columns = columns
        self.geom_column = geom_column
        self.storage_srid = storage_srid
        self.filter_srid = filter_srid
        self.flip = flip
        self.to_storage = to_storage
        self.params: list[Any] = []

    # -- entry ---------------------------------------------------------------------------
    def compile(self, node: ast.Node) -> sql.Composable:
        return self._node(node)

    # -- helpers -------------------------------------------------------------------------
    def _param(self, value: Any) -> sql.Composable:
        self.params.append(value)
        return sql.SQL("%s")

    def _attribute(self, name: str) -> sql.Composable:
        if self.geom_column and name in ("geometry", "geom", self.geom_column):
            return sql.Identifier(self.geom_column)
        if name not in self.columns and name != "id":
            known = ", ".join(sorted(self.columns)) or "(none)"
            raise InvalidParameterError(
                f"The filter names an unknown property '{name}'; queryables are: {known}."
            )
        return sql.Identifier(name)

    def _is_geom(self, node: Any) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and bool(self.geom_column)
            and node.name in ("geometry", "geom", self.geom_column)
        )

    def _value(self, node: Any) -> sql.Composable:
        if isinstance(node, ast.Attribute):
            return self._attribute(node.name)
        if isinstance(node, ast.Arithmetic):
            op = _ARITHMETIC.get(node.op.value)
            if op is None:
                raise InvalidParameterError(
                    f"Arithmetic operator '{node.op.value}' is not supported."
                )
            return sql.SQL("({} {} {})").format(
                self._value(node.lhs), sql.SQL(op), self._value(node.rhs)
            )
        if isinstance(node, ast.Function):
            raise InvalidParameterError(f"The filter function '{node.name}' is not supported.")
        if isinstance(node, values.Geometry | values.Envelope):
            return self._geometry(node)
        if isinstance(node, bool | int | float | str | dt.date | dt.datetime):
            return self._param(node)
        if node is None:
            return sql.SQL("NULL")
        raise InvalidParameterError(f"The filter uses an unsupported value {type(node).__name__}.")

    def _geometry(self, node: Any) -> sql.Composable:
        if not self.geom_column:
            raise InvalidParameterError("This collection has no geometry to filter on.")
        geometry = _valid_geometry(node)
        literal = sql.SQL("ST_SetSRID(ST_GeomFromGeoJSON({}), {})").format(
            self._param(json.dumps(geometry)), sql.Literal(int(self.filter_srid))
        )
        if self.flip:
            literal = sql.SQL("ST_FlipCoordinates({})").format(literal)
        if self.to_storage is not None:
            return self.to_storage(literal, self.filter_srid)
        return literal

    # -- nodes ---------------------------------------------------------------------------
    def _node(self, node: Any) -> sql.Composable:  # noqa: C901 - one dispatch table
        if isinstance(node, ast.And | ast.Or):
            word = " AND " if isinstance(node, ast.And) else " OR "
            parts = [self._node(operand) for operand in _chain(node)]
            return sql.SQL("({})").format(sql.SQL(word).join(parts))
        if isinstance(node, ast.Not):
            return sql.SQL("(NOT {})").format(self._node(node.sub_node))
        if type(node) in _COMPARISON:
            return sql.SQL("({} {} {})").format(
                self._value(node.lhs), sql.SQL(_COMPARISON[type(node)]), self._value(node.rhs)
            )
        if isinstance(node, ast.Between):
            return sql.SQL("({} {}BETWEEN {} AND {})").format(
                self._value(node.lhs),
                sql.SQL("NOT " if node.not_ else ""),
                self._value(node.low),
                self._value(node.high),
            )
        if isinstance(node, ast.Like):
            pattern = node.pattern
            if not isinstance(pattern, str):
                raise InvalidParameterError("LIKE needs a text pattern.")
            if node.wildcard != "%" or node.singlechar not in ("_", "."):
                pattern = pattern.replace(node.wildcard, "%")
            if node.singlechar == ".":
                pass  # CQL2 uses '_'; pygeofilter's default '.' is not a wildcard in CQL2
            return sql.SQL("(CAST({} AS text) {}{} {})").format(
                self._value(node.lhs),
                sql.SQL("NOT " if node.not_ else ""),
                sql.SQL("ILIKE" if node.nocase else "LIKE"),
                self._param(pattern),
            )
        if isinstance(node, ast.In):
            items = sql.SQL(", ").join(self._value(v) for v in node.sub_nodes)
            return sql.SQL("({} {}IN ({}))").format(
                self._value(node.lhs), sql.SQL("NOT " if node.not_ else ""), items
            )
        if isinstance(node, ast.IsNull):
            return sql.SQL("({} IS {}NULL)").format(
                self._value(node.lhs), sql.SQL("NOT " if node.not_ else "")
            )
        if isinstance(node, ast.Include):
            return sql.SQL("FALSE" if node.not_ else "TRUE")
        if type(node) in _SPATIAL:
            lhs, rhs = node.lhs, node.rhs
            return sql.SQL("{}({}, {})").format(
                sql.SQL(_SPATIAL[type(node)]), self._spatial(lhs), self._spatial(rhs)
            )
        if isinstance(node, ast.BBox):
            env = values.Envelope(node.minx, node.maxx, node.miny, node.maxy)
            return sql.SQL("ST_Intersects({}, {})").format(
                self._spatial(node.lhs), self._geometry(env)
            )
        if isinstance(node, ast.TemporalPredicate):
            return self._temporal(node)
        raise InvalidParameterError(f"The filter construct {type(node).__name__} is not supported.")

    def _spatial(self, node: Any) -> sql.Composable:
        if isinstance(node, ast.Attribute):
            if not self._is_geom(node):
                raise InvalidParameterError(
                    f"Spatial predicates apply to the geometry, not to '{node.name}'."
                )
            return self._attribute(node.name)
        if isinstance(node, values.Geometry | values.Envelope):
            return self._geometry(node)
        raise InvalidParameterError(
            "A spatial predicate needs the geometry and a geometry literal."
        )

    def _temporal(self, node: ast.TemporalPredicate) -> sql.Composable:
        lhs = self._value(node.lhs)
        rhs = node.rhs
        if isinstance(rhs, values.Interval):
            start = self._param(rhs.start) if rhs.start is not None else sql.SQL("'-infinity'")
            end = self._param(rhs.end) if rhs.end is not None else sql.SQL("'infinity'")
        elif isinstance(rhs, dt.date | dt.datetime):
            start = end = self._param(rhs)
        else:
            raise InvalidParameterError("A temporal predicate needs a date, timestamp or interval.")
        op = node.op.value.upper() if hasattr(node.op, "value") else str(node.op)
        if op in ("AFTER",):
            return sql.SQL("({} > {})").format(lhs, end)
        if op in ("BEFORE",):
            return sql.SQL("({} < {})").format(lhs, start)
        if op in ("TEQUALS",):
            return sql.SQL("({} = {})").format(lhs, start)
        if op in ("DISJOINT",):
            return sql.SQL("(NOT ({} BETWEEN {} AND {}))").format(lhs, start, end)
        # INTERSECTS, DURING, CONTAINS, OVERLAPS... on an instant: within the interval
        return sql.SQL("({} BETWEEN {} AND {})").format(lhs, start, end)
