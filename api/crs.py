"""Coordinate reference systems of the API: which CRSs clients may name (``crs``, ``bbox-crs``,
``filter-crs``), how their parameters are parsed, and the SQL that moves geometries between them.

Every CRS listed in :data:`SUPPORTED_CRS` is advertised on every collection with a geometry and
works for output and for bounding boxes (``tests/api/test_crs.py`` checks each one). Transforms
that involve a VN-2000 CRS go through its *pinned* twin (migration 0005: the same projection
with the 7-parameter "VN-2000 to WGS 84 (2)" transformation of Decision 05/2007), so PostGIS
never picks a ballpark datum shift, and CRSs that PostGIS's own ``spatial_ref_sys`` lacks (EPSG
9209 on PostGIS 3.3) work through their twin.

>>> parse_crs("EPSG:9209")
('http://www.opengis.net/def/crs/EPSG/0/9209', 9209, False)
>>> transform_expr(sql.SQL("g"), 5897, 9209).as_string(None)
'ST_SetSRID(ST_Transform(ST_SetSRID(g, 958970), 992090), 9209)'
"""

from __future__ import annotations

from psycopg import sql

from api.errors import InvalidParameterError

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
GEOGRAPHIC = {4326, 4756}

# VN-2000 CRSs and their pinned twins (migration 0005: 7-parameter transformation to WGS 84)
PINNED = {4756: 947560, 3405: 934050, 5897: 958970, 9209: 992090}

_ALIASES = {"CRS84": CRS84, "OGC:CRS84": CRS84, "urn:ogc:def:crs:OGC:1.3:CRS84": CRS84}


def crs_uri(srid: int) -> str:
    return f"http://www.opengis.net/def/crs/EPSG/0/{srid}"


def storage_uri(srid: int) -> str:
    """The URI a collection advertises as its ``storageCrs``."""
    return CRS84 if srid == 4326 else crs_uri(srid)


def advertised(storage_srid: int) -> list[str]:
    """The CRS URIs a collection stored in ``storage_srid`` lists (all of them work)."""
    uris = list(SUPPORTED_CRS)
    if storage_uri(storage_srid) not in uris:
        uris.append(storage_uri(storage_srid))
    return uris


def parse_crs(value: str | None, what: str = "crs") -> tuple[str, int, bool]:
    """(uri, srid, latitude-first) of a CRS parameter; CRS84 when absent."""
    if value is None:
        return CRS84, 4326, False
    v = value.strip().strip("[]")
    if v in _ALIASES:
        v = _ALIASES[v]
    elif v.upper().startswith("EPSG:"):
        v = crs_uri(int(v[5:])) if v[5:].isdigit() else v
    if v not in SUPPORTED_CRS:
        supported = ", ".join(sorted(SUPPORTED_CRS))
        raise InvalidParameterError(
            f"{what} '{value[:80]}' is not supported; use one of {supported}."
        )
    return v, SUPPORTED_CRS[v], v in LAT_FIRST


def pinned_srid(srid: int) -> int:
    """The SRID to use when crossing between VN-2000 and WGS 84 datums."""
    return PINNED.get(srid, srid)


def transform_expr(expr: sql.Composable, src: int, dst: int) -> sql.Composable:
    """``expr`` (SRID ``src``) in SRID ``dst``; VN-2000 ends go through their pinned twins."""
    if src == dst:
        return expr
    s, d = pinned_srid(src), pinned_srid(dst)
    if s != src:
        expr = sql.SQL("ST_SetSRID({}, {})").format(expr, sql.Literal(s))
    out = sql.SQL("ST_Transform({}, {})").format(expr, sql.Literal(d))
    if d != dst:
        out = sql.SQL("ST_SetSRID({}, {})").format(out, sql.Literal(dst))
    return out


def precision(srid: int) -> int:
    """Decimals written in GeoJSON: ~1 cm in degrees or in metres."""
    return 7 if srid in GEOGRAPHIC else 2
