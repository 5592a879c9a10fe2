"""Reading vector files (any OGR format) and cleaning their values and geometries: shared by
the administrative-unit and cadastre importers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import shapely

from gis.errors import InputFileError


def read_vector(
    path: Path, layer: str | None = None
) -> tuple[dict, np.ndarray, dict[str, np.ndarray]]:
    """(metadata, WKB array, {field name: values}) of a vector file.

    Raises InputFileError naming the file when it is missing, unreadable or has no features.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file.")
    try:
        meta, _fids, wkb, field_data = pyogrio.raw.read(path, layer=layer)
    except Exception as exc:  # pyogrio raises several GDAL-derived types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFileError(f"{path}: cannot be read as a vector file ({reason}).") from exc
    if wkb is None or len(wkb) == 0:
        raise InputFileError(f"{path}: holds no features.")
    fields = dict(zip([str(f) for f in meta["fields"]], field_data, strict=True))
    return meta, wkb, fields


def as_str(value) -> str | None:
    """A field value as stripped text (None for empty/NaN; 12.0 → '12').

    >>> as_str(12.0), as_str("  a "), as_str(float("nan"))
    ('12', 'a', None)
    """
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    s = str(value).strip()
    return s or None


def polygonal(geom) -> shapely.MultiPolygon | None:
    """The non-empty polygonal parts of a geometry as a MultiPolygon (None if there are none)."""
    if geom is None or geom.is_empty:
        return None
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    polys = []
    for g in parts:
        polys.extend(shapely.get_parts(g) if g.geom_type == "MultiPolygon" else [g])
    polys = [p for p in polys if not p.is_empty and p.area > 0]
    return shapely.MultiPolygon(polys) if polys else None
