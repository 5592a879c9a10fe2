"""Administrative units: import any boundary file (GeoPackage, Shapefile, GeoJSON...; any CRS)
and the shipped reference data (units before and after the 2025 reform, with the crosswalk).

Units are keyed by (code, valid_from), so a commune code reused after the reform coexists with
its predecessor; ``valid_to`` closes the old ones.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from pyproj import Geod
from sqlalchemy import Engine, text

from gis.crs import likely_crs, parse_crs, transform_geometries
from gis.errors import CRSError, GeometryError, InputFileError
from gis.vector import as_str, polygonal, read_vector
from vntext import strip_diacritics

REFORM_2025 = dt.date(2025, 7, 1)
UNKNOWN_START = dt.date(1900, 1, 1)

CODE_FIELDS = ("code", "ma", "ma_dvhc", "madvhc", "ma_xa", "maxa", "admin_code", "unit_code")
NAME_FIELDS = ("name", "ten", "ten_dvhc", "tendvhc", "ten_xa", "tenxa", "unit_name")
FULL_NAME_FIELDS = ("full_name", "ten_day_du", "fullname")
TYPE_FIELDS = ("type", "unit_type", "loai", "cap_hanh_chinh")
PARENT_FIELDS = ("parent_code", "district_code", "ma_huyen", "province_code", "ma_tinh")
PROVINCE_FIELDS = ("province_code", "ma_tinh")
LEVEL_FIELDS = ("level", "cap")
VALID_FROM_FIELDS = ("valid_from", "hieu_luc_tu")
VALID_TO_FIELDS = ("valid_to", "valid_until", "hieu_luc_den")

UNIT_TYPE_PREFIXES = (
    "Thành phố",
    "Thị trấn",
    "Thị xã",
    "Đặc khu",
    "Phường",
    "Huyện",
    "Quận",
    "Tỉnh",
    "Xã",
)
TYPE_LEVEL = {
    "Tỉnh": "province",
    "Huyện": "district",
    "Quận": "district",
    "Thị xã": "district",
    "Xã": "commune",
    "Phường": "commune",
    "Thị trấn": "commune",
    "Đặc khu": "commune",
}
CODE_LENGTH_LEVEL = {2: "province", 3: "district", 5: "commune"}

_GEOD = Geod(ellps="WGS84")


def split_unit_type(full_name: str) -> tuple[str | None, str]:
    """('Phường', 'Phủ Lý') from 'Phường Phủ Lý'."""
    full_name = unicodedata.normalize("NFC", full_name.strip())
    for prefix in UNIT_TYPE_PREFIXES:
        if full_name.startswith(prefix + " "):
            return prefix, full_name[len(prefix) + 1 :].strip()
    return None, full_name


@dataclass
class ImportReport:
    """What an import did; printed by the CLI."""

    path: str
    features: int = 0
    inserted: int = 0
    updated: int = 0
    repaired: list[str] = field(default_factory=list)
    source_crs: str | None = None
    #: units outside their parent or moved, imported because of ``force``
    placement_forced: list[str] = field(default_factory=list)
    source_crs_object: object = field(default=None, repr=False)

    def summary(self) -> str:
        parts = [
            f"{self.features} units from {self.path} ({self.source_crs})",
            f"{self.inserted} new, {self.updated} updated",
        ]
        if self.repaired:
            parts.append(
                f"{len(self.repaired)} geometries repaired: {', '.join(self.repaired[:10])}"
                + (" ..." if len(self.repaired) > 10 else "")
            )
        if self.placement_forced:
            parts.append(
                f"{len(self.placement_forced)} units out of place imported because of "
                f"--force: {', '.join(self.placement_forced[:5])}"
                + (" ..." if len(self.placement_forced) > 5 else "")
            )
        return "; ".join(parts)


def _pick(fields: dict[str, np.ndarray], candidates: tuple[str, ...]) -> np.ndarray | None:
    lowered = {k.lower(): v for k, v in fields.items()}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    return None


def _as_str(value) -> str | None:
    """A field value as NFC text (names mix NFC and NFD in the wild)."""
    text_value = as_str(value)
    return unicodedata.normalize("NFC", text_value) if text_value else None


def _as_date(value, default: dt.date | None) -> dt.date | None:
    if value is None:
        return default
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return default
        return value.astype("datetime64[D]").item()
    text_value = str(value).strip()
    if not text_value:
        return default
    try:
        return dt.date.fromisoformat(text_value[:10])
    except ValueError:
        return default


def _level_for(code: str, unit_type: str | None, explicit: str | None) -> str:
    if explicit:
        return explicit
    if unit_type in TYPE_LEVEL:
        return TYPE_LEVEL[unit_type]
    if len(code) in CODE_LENGTH_LEVEL:
        return CODE_LENGTH_LEVEL[len(code)]
    return "commune"


def read_admin_units(
    path: Path,
    *,
    level: str | None = None,
    crs: str | None = None,
    valid_from: dt.date | None = None,
    valid_to: dt.date | None = None,
    layer: str | None = None,
    source: str | None = None,
) -> tuple[list[dict], ImportReport]:
    """Read a boundary file into rows for ``admin_units`` (geometry as WKB in EPSG:4326).

    Raises InputFileError / CRSError / GeometryError with one sentence naming the problem.
    """
    path = Path(path)
    meta, wkb, fields = read_vector(path, layer)
    report = ImportReport(path=str(path))
    codes = _pick(fields, CODE_FIELDS)
    if codes is None:
        raise InputFileError(
            f"{path}: no unit code field (looked for {', '.join(CODE_FIELDS)}); found "
            f"{', '.join(fields) or 'no fields'}."
        )
    names = _pick(fields, NAME_FIELDS)
    full_names = _pick(fields, FULL_NAME_FIELDS)
    if names is None and full_names is None:
        raise InputFileError(
            f"{path}: no unit name field (looked for {', '.join(NAME_FIELDS + FULL_NAME_FIELDS)})."
        )
    types = _pick(fields, TYPE_FIELDS)
    parents = _pick(fields, PARENT_FIELDS)
    provinces = _pick(fields, PROVINCE_FIELDS)
    levels = _pick(fields, LEVEL_FIELDS)
    froms = _pick(fields, VALID_FROM_FIELDS)
    tos = _pick(fields, VALID_TO_FIELDS)
    sources = _pick(fields, ("source",))

    src_crs_text = crs or meta.get("crs")
    if not src_crs_text:
        raise CRSError(f"{path}: has no coordinate reference system; pass --crs (e.g. EPSG:5897).")
    src_crs = parse_crs(src_crs_text, what=f"{path}: CRS")
    report.source_crs = src_crs.to_string()
    report.source_crs_object = src_crs

    geoms = shapely.from_wkb(np.asarray(wkb, dtype=object), on_invalid="ignore")
    # a point of each unit in the file's own plane: the placement check re-reads it in other
    # CRSs to name the one the file is really in
    src_points = shapely.centroid(geoms)
    geoms = transform_geometries(geoms, src_crs, 4326)
    bounds = shapely.total_bounds(geoms[~shapely.is_missing(geoms)]) if len(geoms) else None
    if (
        bounds is None
        or not np.all(np.isfinite(bounds))
        or not (
            -180 <= bounds[0] <= 180
            and -180 <= bounds[2] <= 180
            and -90 <= bounds[1] <= 90
            and -90 <= bounds[3] <= 90
        )
    ):
        raise CRSError(
            f"{path}: coordinates do not fit {src_crs.name} (they fall outside the Earth once "
            "transformed); is the CRS right, or are x and y swapped?"
        )

    rows: list[dict] = []
    unrepairable: list[str] = []
    for i, geom in enumerate(geoms):
        code = _as_str(codes[i])
        if not code:
            raise InputFileError(f"{path}: feature {i + 1} has an empty unit code.")
        full = _as_str(full_names[i]) if full_names is not None else None
        name = _as_str(names[i]) if names is not None else None
        unit_type = _as_str(types[i]) if types is not None else None
        if full and not unit_type:
            unit_type, bare = split_unit_type(full)
            name = name or bare
        name = name or full
        if name and not unit_type:
            unit_type, name = split_unit_type(name)
            unit_type = unit_type or None
        unit_level = _level_for(
            code, unit_type, level or (_as_str(levels[i]) if levels is not None else None)
        )
        if unit_level not in ("country", "province", "district", "commune"):
            raise InputFileError(f"{path}: feature {code} has unknown level '{unit_level}'.")
        if geom is None:
            unrepairable.append(code)
            continue
        if not shapely.is_valid(geom):
            fixed = polygonal(shapely.make_valid(geom))
            if fixed is None or fixed.is_empty:
                unrepairable.append(code)
                continue
            report.repaired.append(code)
            geom = fixed
        else:
            geom = polygonal(geom)
            if geom is None:
                unrepairable.append(code)
                continue
        area_km2 = abs(_GEOD.geometry_area_perimeter(geom)[0]) / 1e6
        start = _as_date(froms[i], None) if froms is not None else None
        end = _as_date(tos[i], None) if tos is not None else None
        parent = _as_str(parents[i]) if parents is not None else None
        rows.append(
            {
                "code": code,
                "level": unit_level,
                "unit_type": unit_type,
                "name": name,
                "name_ascii": strip_diacritics(name),
                "parent_code": parent if parent != code else None,
                "province_code": _as_str(provinces[i])
                if provinces is not None
                else (code if unit_level == "province" else None),
                "valid_from": start or valid_from or UNKNOWN_START,
                "valid_to": end or valid_to,
                "source": (_as_str(sources[i]) if sources is not None else None)
                or source
                or path.name,
                "area_km2": round(area_km2, 3),
                "wkb": shapely.to_wkb(geom, hex=True),
                "src_x": float(shapely.get_x(src_points[i])),
                "src_y": float(shapely.get_y(src_points[i])),
            }
        )
    if unrepairable:
        raise GeometryError(
            f"{path}: {len(unrepairable)} features have no usable polygon geometry "
            f"(codes {', '.join(unrepairable[:10])}{' ...' if len(unrepairable) > 10 else ''}); nothing was imported."
        )
    report.features = len(rows)
    return rows, report


UPSERT_UNIT = text(
    """
    INSERT INTO admin_units (code, level, unit_type, name, name_ascii, parent_code, province_code,
                             valid_from, valid_to, source, area_km2, geom)
    VALUES (:code, :level, :unit_type, :name, :name_ascii, :parent_code, :province_code,
            :valid_from, :valid_to, :source, :area_km2,
            CASE WHEN CAST(:wkb AS text) IS NULL THEN NULL ELSE ST_SetSRID(ST_GeomFromWKB(decode(CAST(:wkb AS text), 'hex')), 4326) END)
    ON CONFLICT (code, valid_from) DO UPDATE SET
        level = EXCLUDED.level, unit_type = COALESCE(EXCLUDED.unit_type, admin_units.unit_type),
        name = EXCLUDED.name, name_ascii = EXCLUDED.name_ascii,
        parent_code = COALESCE(EXCLUDED.parent_code, admin_units.parent_code),
        province_code = COALESCE(EXCLUDED.province_code, admin_units.province_code),
        valid_to = EXCLUDED.valid_to, source = EXCLUDED.source,
        area_km2 = COALESCE(EXCLUDED.area_km2, admin_units.area_km2),
        geom = COALESCE(EXCLUDED.geom, admin_units.geom)
    RETURNING (xmax = 0) AS inserted
    """
)


def _upsert(conn, rows: list[dict], report: ImportReport) -> None:
    for row in rows:
        inserted = conn.execute(UPSERT_UNIT, row).scalar_one()
        if inserted:
            report.inserted += 1
        else:
            report.updated += 1


#: A re-import moving the units already stored by more than this (median, m) is taken for a
#: wrong CRS, not a boundary revision.
DISPLACEMENT_TOLERANCE_M = 50.0
#: How far (m) a unit may reach outside its parent unit: boundaries of different levels come
#: from different sources and generalisations.
PARENT_TOLERANCE_M = 500.0

_PLACEMENT_SQL = text(
    """
    WITH p AS (
        SELECT i, code, parent, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS pt
        FROM unnest(CAST(:i AS int[]), CAST(:code AS text[]), CAST(:parent AS text[]),
                    CAST(:lon AS float8[]), CAST(:lat AS float8[])) AS t(i, code, parent, lon, lat)
    )
    SELECT p.i,
           (SELECT ST_Distance(ST_Centroid(s.geom)::geography, p.pt::geography)
              FROM admin_units s WHERE s.code = p.code AND s.geom IS NOT NULL
              ORDER BY s.valid_from DESC LIMIT 1) AS moved_m,
           (SELECT CASE WHEN ST_Intersects(u.geom, p.pt) THEN 0.0
                        ELSE ST_Distance(u.geom::geography, p.pt::geography) END
              FROM admin_units u WHERE u.code = p.parent AND u.geom IS NOT NULL
               AND NOT (u.code = ANY(CAST(:file_codes AS text[])))
              ORDER BY u.valid_from DESC LIMIT 1) AS outside_parent_m
    FROM p
    """
)


def _placement(conn, rows: list[dict], idx: list[int], lon, lat, file_codes: list[str]):
    return {
        int(r.i): (r.moved_m, r.outside_parent_m)
        for r in conn.execute(
            _PLACEMENT_SQL,
            {
                "i": idx,
                "code": [rows[i]["code"] for i in idx],
                "parent": [rows[i]["parent_code"] for i in idx],
                "lon": [float(v) for v in lon],
                "lat": [float(v) for v in lat],
                "file_codes": file_codes,
            },
        )
    }


def check_unit_placement(
    conn, rows: list[dict], report: ImportReport, path: Path, force: bool = False
) -> None:
    """Refuse units a wrong declared CRS has moved: units already stored that would move all
    alike (median over :data:`DISPLACEMENT_TOLERANCE_M`), or units outside their parent unit
    (stored, not in this file) by more than :data:`PARENT_TOLERANCE_M`. The error names the CRS
    the coordinates fit (VN-2000 family, WGS 84); ``force`` imports anyway.
    """
    if not rows:
        return
    idx = list(range(len(rows)))
    pts = shapely.centroid(shapely.from_wkb(np.array([r["wkb"] for r in rows], dtype=object)))
    inner = shapely.point_on_surface(
        shapely.from_wkb(np.array([r["wkb"] for r in rows], dtype=object))
    )
    file_codes = sorted({r["code"] for r in rows})
    found = _placement(conn, rows, idx, shapely.get_x(pts), shapely.get_y(pts), file_codes)
    moved = np.array([m for m, _ in found.values() if m is not None], dtype=float)
    inner_found = _placement(
        conn, rows, idx, shapely.get_x(inner), shapely.get_y(inner), file_codes
    )
    outside = [i for i, (_, o) in inner_found.items() if o is not None and o > PARENT_TOLERANCE_M]
    displaced = len(moved) > 0 and float(np.median(moved)) > DISPLACEMENT_TOLERANCE_M
    if not displaced and not outside:
        return
    if force:
        report.placement_forced = [rows[i]["code"] for i in (outside or idx)]
        return
    declared = report.source_crs or "the declared CRS"
    if displaced:
        msg = (
            f"{path}: the {len(moved)} units already stored would move by "
            f"{float(np.median(moved)):,.0f} m (median) once read as {declared}"
        )
    else:
        worst = max(outside, key=lambda i: inner_found[i][1])
        msg = (
            f"{path}: {len(outside)} units lie outside their parent unit by more than "
            f"{PARENT_TOLERANCE_M:.0f} m once read as {declared} (e.g. {rows[worst]['code']}: "
            f"{inner_found[worst][1]:,.0f} m outside {rows[worst]['parent_code']})"
        )
    src_pts = np.array([shapely.Point(r["src_x"], r["src_y"]) for r in rows], dtype=object)

    def fit(xy: np.ndarray) -> float:
        res = _placement(conn, rows, idx, xy[:, 0], xy[:, 1], file_codes)
        ok = [
            (m is None or m <= DISPLACEMENT_TOLERANCE_M * 4)
            and (o is None or o <= PARENT_TOLERANCE_M)
            for m, o in res.values()
        ]
        return float(np.mean(ok)) if ok else 0.0

    best = likely_crs(src_pts, report.source_crs_object, 4326, fit)
    if best is not None:
        msg += f"; the coordinates fit EPSG:{best[0]} ({best[1]}): import with --crs EPSG:{best[0]}"
    raise CRSError(msg + ", or --force to import them as they are. Nothing was imported.")


def import_admin_units(
    engine: Engine, path: Path, *, force: bool = False, **options
) -> ImportReport:
    """Import a boundary file in one transaction (all or nothing). See ``read_admin_units``.

    Units a wrong CRS has moved (:func:`check_unit_placement`) fail the import unless ``force``.
    """
    rows, report = read_admin_units(path, **options)
    with engine.begin() as conn:
        check_unit_placement(conn, rows, report, Path(path), force=force)
        _upsert(conn, rows, report)
    return report


def _crosswalk_rows(new_communes_csv: Path) -> list[dict]:
    rows = []
    with open(new_communes_csv, encoding="utf-8") as f:
        for record in csv.DictReader(f):
            for member in filter(None, (record.get("old_members") or "").split("|")):
                old_code, _name, relation = member.split(":")
                rows.append(
                    {
                        "old_code": old_code,
                        "new_code": record["new_code"],
                        "relation": relation,
                        "effective": REFORM_2025,
                        "note": None,
                    }
                )
    return rows


def load_reference_units(
    engine: Engine, admin_dir: Path, *, include_polygons: bool = True
) -> list[ImportReport]:
    """Load the shipped units of a province before and after the 2025 reform (one transaction).

    ``admin_dir`` holds the files described in data/README.md: ``*_province_pre2025.geojson``,
    ``*_districts_pre2025.geojson``, ``*_new_communes_2025.geojson`` (polygons),
    ``*_old_communes.csv`` (names, codes, old→new) and ``*_new_communes_2025.csv``.
    """
    admin_dir = Path(admin_dir)
    batches: list[tuple[ImportReport, list[dict]]] = []  # (report, its rows), one per source

    def first(pattern: str) -> Path | None:
        found = sorted(admin_dir.glob(pattern))
        return found[0] if found else None

    pre_start, pre_end = dt.date(1997, 1, 1), REFORM_2025 - dt.timedelta(days=1)
    if include_polygons:
        for pattern, start, end in (
            ("*_province_pre2025.geojson", pre_start, pre_end),
            ("*_districts_pre2025.geojson", pre_start, pre_end),
            ("*_new_communes_2025.geojson", REFORM_2025, None),
        ):
            path = first(pattern)
            if path is None:
                continue
            rows, report = read_admin_units(path, valid_from=start, valid_to=end)
            for row in rows:  # the file's own "valid_until" must not move the start date
                row["valid_from"] = start
                if row["level"] == "commune" and start == REFORM_2025:
                    row["parent_code"] = row["province_code"]
            batches.append((report, rows))

    polygon_rows = [row for _, rows in batches for row in rows]
    polygon_keys = {(r["code"], r["valid_from"]) for r in polygon_rows}
    province_codes = {
        r["province_code"]
        for r in polygon_rows
        if r["valid_from"] == REFORM_2025 and r["province_code"]
    }
    province_code = sorted(province_codes)[0] if province_codes else None

    # names-only units: former communes, and the new province's other communes
    old_csv = first("*_old_communes.csv")
    new_csv = first("*_new_communes_2025.csv")
    name_rows: list[dict] = []
    if old_csv:
        with open(old_csv, encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                merged_early = not rec["status"].startswith("in force")
                name_rows.append(
                    {
                        "code": rec["old_code"],
                        "level": "commune",
                        "unit_type": rec["old_type"],
                        "name": rec["old_name"],
                        "name_ascii": rec["old_name_ascii"],
                        "parent_code": rec["old_district_code"],
                        "province_code": None,
                        "valid_from": pre_start,
                        "valid_to": dt.date(2025, 2, 28) if merged_early else pre_end,
                        "source": f"{old_csv.name} ({rec['status']})",
                        "area_km2": None,
                        "wkb": None,
                    }
                )
    if new_csv:
        with open(new_csv, encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                if (rec["new_code"], REFORM_2025) in polygon_keys:
                    continue
                name_rows.append(
                    {
                        "code": rec["new_code"],
                        "level": "commune",
                        "unit_type": rec["new_type"],
                        "name": rec["new_name"],
                        "name_ascii": rec["new_name_ascii"],
                        "parent_code": province_code,
                        "province_code": province_code,
                        "valid_from": REFORM_2025,
                        "valid_to": None,
                        "source": new_csv.name,
                        "area_km2": None,
                        "wkb": None,
                    }
                )
        gazetteer = first("*gazetteer*.json")
        successor = {}
        if gazetteer:
            successor = (
                json.loads(gazetteer.read_text(encoding="utf-8"))
                .get("province_old", {})
                .get("successor")
                or {}
            )
        if province_code and successor.get("code") == province_code:
            unit_type, bare = split_unit_type(successor["name"])
            name_rows.append(
                {
                    "code": province_code,
                    "level": "province",
                    "unit_type": unit_type,
                    "name": bare,
                    "name_ascii": strip_diacritics(bare),
                    "parent_code": None,
                    "province_code": province_code,
                    "valid_from": dt.date.fromisoformat(
                        successor.get("effective", str(REFORM_2025))
                    ),
                    "valid_to": None,
                    "source": gazetteer.name,
                    "area_km2": None,
                    "wkb": None,
                }
            )
    names_report = ImportReport(
        path=str(admin_dir), source_crs="no geometry", features=len(name_rows)
    )
    batches.append((names_report, name_rows))

    with engine.begin() as conn:
        for report, rows in batches:
            _upsert(conn, rows, report)
        if new_csv:
            for row in _crosswalk_rows(new_csv):
                conn.execute(
                    text(
                        "INSERT INTO admin_unit_crosswalk (old_code, new_code, relation, effective, note) "
                        "VALUES (:old_code, :new_code, :relation, :effective, :note) "
                        "ON CONFLICT (old_code, new_code) DO UPDATE SET relation = EXCLUDED.relation"
                    ),
                    row,
                )
    return [report for report, _ in batches]
