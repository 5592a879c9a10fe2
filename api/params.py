"""Query parameters of the feature routes: parsed and validated into a :class:`FeatureQuery`.

Every check happens here, before any SQL is built: unknown or repeated parameters, malformed
numbers, boxes, datetimes, CRSs, sort keys, property names and CQL2 filters (syntax, known
properties, complexity limits, valid geometries) each raise :class:`InvalidParameterError`
with one sentence naming the parameter, which the app answers 400.

>>> parse_bbox("105.8,20.5,105.9,20.6")
[105.8, 20.5, 105.9, 20.6]
>>> decode_cursor(encode_cursor(100, 42))
(100, 42, False)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from api.collections import TableInfo
from api.cql import parse_filter
from api.crs import parse_crs
from api.errors import InvalidParameterError
from api.settings import ApiSettings

ITEMS_PARAMS = frozenset(
    {
        "f",
        "lang",
        "limit",
        "offset",
        "cursor",
        "bbox",
        "bbox-crs",
        "crs",
        "datetime",
        "sortby",
        "properties",
        "skipGeometry",
        "filter",
        "filter-lang",
        "filter-crs",
    }
)
ITEM_PARAMS = frozenset({"f", "lang", "crs"})
JSON_FORMATS = ("", "json", "geojson")


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

    @property
    def descending(self) -> bool:
        return bool(self.sortby) and not self.sortby[0][1]


# -- single values -----------------------------------------------------------------------------
def parse_int(value: str, name: str, minimum: int, maximum: int = 2**53) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidParameterError(f"{name} must be an integer, got '{value[:40]}'.") from None
    if number < minimum:
        raise InvalidParameterError(f"{name} must be at least {minimum}, got {number}.")
    if number > maximum:
        raise InvalidParameterError(f"{name} must be at most {maximum}.")
    return number


def parse_bbox(value: str) -> list[float]:
    parts = value.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameterError(
            "bbox must have 4 numbers (minx,miny,maxx,maxy) or 6 with heights."
        )
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameterError(f"bbox values must be numbers, got '{value[:80]}'.") from None
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidParameterError("bbox values must be finite numbers.")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if numbers[1] > numbers[3]:
        raise InvalidParameterError("bbox miny is greater than maxy.")
    if numbers[0] > numbers[2]:
        raise InvalidParameterError(
            "bbox minx is greater than maxx (antimeridian boxes are not supported)."
        )
    return numbers


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
                f"datetime '{value[:60]}' is not an RFC 3339 date-time or interval."
            ) from None
        if len(v) == 10:  # a date: the whole day
            parsed = parsed.replace(tzinfo=dt.UTC)
            if end:
                try:
                    parsed = parsed + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
                except OverflowError:
                    raise InvalidParameterError(
                        f"datetime '{value[:60]}' is out of range."
                    ) from None
        elif parsed.tzinfo is None:
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


def encode_cursor(offset: int, last_id: Any, descending: bool = False) -> str:
    raw = json.dumps([offset, last_id, int(descending)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, Any, bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        offset, last_id, desc = json.loads(raw)
        if not isinstance(offset, int) or offset < 0 or not isinstance(last_id, int | str):
            raise ValueError
        if isinstance(last_id, int) and not -(2**63) <= last_id < 2**63:
            raise ValueError
        return offset, last_id, bool(desc)
    except Exception:  # noqa: BLE001 - any malformed token
        raise InvalidParameterError("cursor is not a cursor this server issued.") from None


def output_format(params: Mapping[str, str], accept: str = "") -> str:
    """'html' (f=html, f=jsonld, or a browser's Accept header), else 'json'; 400 otherwise."""
    f = (params.get("f") or "").lower()
    if f in ("html", "jsonld"):
        return "html"
    if f in JSON_FORMATS:
        if not f and wants_html(accept):
            return "html"
        return "json"
    raise InvalidParameterError(f"f '{f[:20]}' is not supported here; use json, geojson or html.")


def wants_html(accept: str) -> bool:
    """A browser's Accept header: text/html before any JSON type."""
    accept = accept.lower()
    if "text/html" not in accept:
        return False
    json_at = accept.find("json")
    return json_at < 0 or accept.find("text/html") < json_at


# -- whole requests ----------------------------------------------------------------------------
def _check_names(params, allowed: set[str] | frozenset[str]) -> None:
    for key in params:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise InvalidParameterError(f"Unknown query parameter '{key[:60]}'; allowed: {known}.")
    getlist = getattr(params, "getlist", None)
    if getlist is not None:
        for key in params:
            if len(getlist(key)) > 1:
                raise InvalidParameterError(
                    f"Query parameter '{key[:60]}' is given more than once."
                )


def parse_items_query(info: TableInfo, params, settings: ApiSettings) -> FeatureQuery:
    """A :class:`FeatureQuery` from the query parameters of ``/collections/{id}/items``."""
    queryables = set(info.properties)
    _check_names(params, ITEMS_PARAMS | queryables)
    q = FeatureQuery()
    q.limit = min(
        parse_int(params["limit"], "limit", 1) if "limit" in params else settings.default_items,
        settings.max_items,
    )
    if "offset" in params:
        q.offset = parse_int(params["offset"], "offset", 0)
    if "cursor" in params:
        q.offset, q.after, _ = decode_cursor(params["cursor"])
    if "bbox" in params:
        if not info.spec.geom_column:
            raise InvalidParameterError(
                f"bbox cannot apply: collection {info.spec.id} has no geometry."
            )
        q.bbox = parse_bbox(params["bbox"])
        _, q.bbox_srid, q.bbox_flip = parse_crs(params.get("bbox-crs"), "bbox-crs")
        if q.bbox_srid == 4326:
            lons = q.bbox[1::2] if q.bbox_flip else q.bbox[0::2]
            lats = q.bbox[0::2] if q.bbox_flip else q.bbox[1::2]
            if any(abs(v) > 180 for v in lons) or any(abs(v) > 90 for v in lats):
                raise InvalidParameterError(
                    "bbox is outside -180..180 longitude / -90..90 latitude."
                )
    elif "bbox-crs" in params:
        raise InvalidParameterError("bbox-crs is given without bbox.")
    if "crs" in params:
        _, q.out_srid, q.out_flip = parse_crs(params["crs"])
    if "datetime" in params:
        if not info.spec.time_column:
            raise InvalidParameterError(
                f"Collection {info.spec.id} has no time property for datetime."
            )
        q.datetime_ = parse_datetime(params["datetime"])
    for key in params:
        if key in queryables and key not in ITEMS_PARAMS:
            q.equals[key] = params[key]
    if "sortby" in params:
        q.sortby = parse_sortby(info, params["sortby"])
    if "properties" in params:
        names = [p.strip() for p in params["properties"].split(",") if p.strip()]
        unknown = [n for n in names if n not in queryables]
        if unknown:
            raise InvalidParameterError(
                f"properties names unknown properties: {', '.join(unknown)[:120]}."
            )
        q.properties = names
    if "skipGeometry" in params:
        value = params["skipGeometry"].lower()
        if value not in ("true", "false"):
            raise InvalidParameterError("skipGeometry must be true or false.")
        q.skip_geometry = value == "true"
    _, q.filter_srid, q.filter_flip = parse_crs(params.get("filter-crs"), "filter-crs")
    if "filter" in params:
        q.filter_ast = parse_filter(
            params["filter"],
            None,
            params.get("filter-lang"),
            settings.max_filter_nodes,
            settings.max_filter_depth,
        )
    elif "filter-lang" in params:
        parse_filter(None, None, params.get("filter-lang"))
    return q


def parse_sortby(info: TableInfo, value: str) -> list[tuple[str, bool]]:
    """``sortby=-area_m2,+id`` -> [(column, ascending)]; only the collection's sortables."""
    sortables = info.sortables
    keys: list[tuple[str, bool]] = []
    for term in value.split(","):
        term = term.strip()
        sign = term[:1] if term[:1] in ("+", "-") else ""  # one optional sign, then the name
        asc = sign != "-"
        name = term[len(sign) :]
        if name not in sortables:
            if name in info.columns:
                raise InvalidParameterError(
                    f"sortby cannot sort on the object property '{name[:60]}'."
                )
            raise InvalidParameterError(
                f"sortby names an unknown property '{name[:60]}'; see /collections/{info.spec.id}/sortables."
            )
        if any(name == k for k, _ in keys):
            raise InvalidParameterError(f"sortby names '{name[:60]}' twice.")
        keys.append((name, asc))
    return keys


def parse_item_query(params) -> FeatureQuery:
    """A :class:`FeatureQuery` (output CRS only) from the parameters of a single item."""
    _check_names(params, ITEM_PARAMS)
    q = FeatureQuery()
    if "crs" in params:
        _, q.out_srid, q.out_flip = parse_crs(params["crs"])
    return q
