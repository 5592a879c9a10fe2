"""Coordinate reference systems: parsing user input and transformations with the VN-2000 →
WGS 84 transformation pinned (Decision 05/2007, "VN-2000 to WGS 84 (2)", 7 parameters,
coordinate frame) instead of whatever PROJ would pick.

>>> t = make_transformer(5897, 4326)
>>> lon, lat = t.transform(587000.0, 2268000.0)
>>> round(lon, 3), round(lat, 3)
(105.836, 20.502)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as PyprojCRSError
from pyproj.transformer import TransformerGroup

from gis.errors import CRSError

VN2000_TO_WGS84 = "VN-2000 to WGS 84 (2)"
VN2000_DATUM = "Vietnam 2000"


def parse_crs(value: str | int | CRS, what: str = "CRS") -> CRS:
    """A pyproj CRS from 'EPSG:5897', 5897, a WKT or PROJ string; CRSError if unknown."""
    if isinstance(value, CRS):
        return value
    try:
        return CRS.from_user_input(int(value) if str(value).isdigit() else value)
    except (PyprojCRSError, ValueError, TypeError) as exc:
        raise CRSError(f"{what} '{value}' is not a known coordinate reference system.") from exc


def _is_vn2000(crs: CRS) -> bool:
    datum = crs.datum.name if crs.datum else ""
    return "2000" in datum and "Vietnam" in datum or datum == "VN-2000"


def _is_wgs84_like(crs: CRS) -> bool:
    datum = crs.datum.name if crs.datum else ""
    return "WGS 84" in datum or "World Geodetic System 1984" in datum


@lru_cache(maxsize=64)
def _transformer(src_wkt: str, dst_wkt: str) -> Transformer:
    src, dst = CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt)
    if src == dst:
        return Transformer.from_crs(src, dst, always_xy=True)
    crosses_datum = (_is_vn2000(src) and _is_wgs84_like(dst)) or (
        _is_wgs84_like(src) and _is_vn2000(dst)
    )
    if crosses_datum:
        group = TransformerGroup(src, dst, always_xy=True)
        for candidate in group.transformers:
            if VN2000_TO_WGS84 in candidate.description:
                return candidate
        raise CRSError(
            f"The pinned transformation '{VN2000_TO_WGS84}' is not available in PROJ for "
            f"{src.name} → {dst.name}."
        )
    return Transformer.from_crs(src, dst, always_xy=True)


def make_transformer(src: str | int | CRS, dst: str | int | CRS) -> Transformer:
    """Transformer (x=easting/lon, y=northing/lat order) between two CRSs."""
    return _transformer(parse_crs(src).to_wkt(), parse_crs(dst).to_wkt())


def transform_geometries(
    geoms: np.ndarray, src: str | int | CRS, dst: str | int | CRS
) -> np.ndarray:
    """Vectorised reprojection of an array of shapely geometries."""
    transformer = make_transformer(src, dst)
    if transformer.source_crs == transformer.target_crs:
        return geoms

    def _apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    out = shapely.transform(geoms, _apply)
    if not np.all(np.isfinite(shapely.get_coordinates(out))):
        raise CRSError(
            f"Coordinates do not fit {parse_crs(src).name}: transforming them gave no finite values "
            "(wrong CRS, or x/y swapped?)."
        )
    return out


#: CRSs tried when coordinates land in the wrong place, to name the one a file is really in:
#: the VN-2000 family (geographic, UTM 48N/49N, the TM-3 zones and provincial meridians) and
#: the WGS 84 CRSs files are mistaken for.
CANDIDATE_CRSS = (
    5897,
    9209,
    3405,
    4756,
    3406,
    5896,
    5898,
    5899,
    9205,
    9206,
    9207,
    9208,
    9210,
    9211,
    9212,
    9213,
    9214,
    9215,
    9216,
    9217,
    9218,
    32648,
    32649,
    4326,
)


def likely_crs(
    points: np.ndarray,
    declared: CRS | None,
    dst: str | int | CRS,
    fit: Callable[[np.ndarray], float],
    min_share: float = 0.9,
    candidates: Iterable[int] = CANDIDATE_CRSS,
) -> tuple[int, str, float] | None:
    """The candidate CRS in which ``points`` (shapely points, file coordinates) fit best.

    Each candidate other than ``declared`` reads the points, transforms them to ``dst`` and
    asks ``fit`` (given the (n, 2) coordinates in ``dst``) for the share of them that fit. The
    best share, if at least ``min_share``, wins: (EPSG code, name, share), else None.
    """
    declared_code = declared.to_epsg() if declared is not None else None
    best: tuple[int, str, float] | None = None
    for code in candidates:
        if code == declared_code:
            continue
        try:
            xy = shapely.get_coordinates(transform_geometries(points, code, dst))
        except CRSError:
            continue  # the coordinates mean nothing in this CRS
        if len(xy) != len(points) or not np.isfinite(xy).all():
            continue
        share = float(fit(xy))
        if share >= min_share and (best is None or share > best[2]):
            best = (code, parse_crs(code).name, share)
    return best
