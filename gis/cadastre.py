"""Cadastral parcels (thửa đất): import from GeoPackage, Shapefile, GeoJSON or GML (via GDAL).

* Field mapping: the field names in use in Vietnamese cadastral exports (ViLIS, TMV.LIS,
  VietMap, the national land database) are recognised case- and accent-insensitively, see
  :data:`FIELD_ALIASES`; anything else can be mapped with ``field_map``.
* CRSs: any CRS GDAL knows; VN-2000 (EPSG:5897 TM-3 105°, 9209 TM-3 105°30′, 3405 UTM 48N,
  4756 geographic) is transformed with the pinned 7-parameter "VN-2000 to WGS 84 (2)" where the
  datum changes (:mod:`gis.crs`). Files without a CRS need ``crs=`` (the CLI's ``--crs``).
* The x/y trap: Vietnamese surveying writes x = northing. A file whose "x" values look like
  northings and "y" values like eastings (or latitudes/longitudes swapped) is detected and
  swapped back (``swap_xy="auto"``), and the report says so.
* Text typed in TCVN3 or VNI-Windows (read by GDAL as Latin-1) is converted to Unicode.
* Invalid geometries are repaired with ``make_valid`` and reported by key; features without a
  usable polygon are rejected with their keys and nothing is imported.
* Land-use codes: 2014 codes (BHK, NHK, LUN...) are kept as raw code + version and mapped to
  2024 codes through ``land_use_code_map``; unknown codes are rejected with their keys.
* Upsert by (commune_code, sheet_number, parcel_number), all in one transaction. Records that
  carry a pre-2025 commune code keep it as ``old_commune_code``; the current commune comes
  from ``admin_unit_crosswalk`` (for a partially merged commune: the new commune containing the
  parcel).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import Connection, Engine, text

from gis.crs import likely_crs, make_transformer, parse_crs, transform_geometries
from gis.db.session import storage_srid
from gis.errors import CRSError, GeometryError, InputFileError
from gis.vector import as_str, polygonal, read_vector
from vntext import repair_legacy, strip_diacritics

#: Recognised field names (compared lower-case, without accents, '_' and spaces removed).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "commune_code": ("maxa", "madvhc", "madvhcxa", "maxaphuong", "communecode", "xa_id", "maxa2"),
    "old_commune_code": ("maxacu", "madvhccu", "oldcommunecode"),
    "sheet_number": (
        "sohieutobando",
        "shbando",
        "soto",
        "tobando",
        "tobd",
        "shto",
        "soto_bd",
        "sheetnumber",
        "sheet",
        "mapsheet",
        "tbd",
    ),
    "parcel_number": (
        "sothututhua",
        "shthua",
        "sothua",
        "thua",
        "sttthua",
        "parcelnumber",
        "parcel",
        "sothutu",
    ),
    "area": ("dientich", "dtich", "dt", "areafile", "dientichthua"),
    "legal_area": ("dientichphaply", "dtpl", "dtphaply", "legalarea", "legalaream2"),
    "land_use_code": (
        "loaidat",
        "mamdsd",
        "mdsd",
        "kyhieumucdich",
        "khloaidat",
        "mucdichsudung",
        "madatsudung",
        "landusecode",
        "landuse",
        "mucdich",
    ),
    "code_version": ("phienbanma", "codeversion", "landusecodeversion"),
    "owner_class": ("doituongsudung", "madoituong", "doituong", "ownerclass", "madtsd"),
    "owner_name": ("tenchu", "chusudung", "tenchusudung", "ownername", "hoten"),
    "address": ("diachi", "diachithua", "address", "xuden"),
    "term": ("thoihansudung", "thoihan", "term"),
    "origin": ("nguongocsudung", "nguongoc", "origin", "ngsd"),
}

_MULTI_CODE_RE = re.compile(r"([A-Za-z]{2,4})\s*(?:\(\s*([\d.,]+)\s*\))?")


def _key(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", strip_diacritics(name).lower())


@dataclass
class CadastreReport:
    """What an import did; printed by the CLI."""

    path: str
    features: int = 0
    inserted: int = 0
    updated: int = 0
    source_crs: str | None = None
    swapped_xy: bool = False
    repaired: list[str] = field(default_factory=list)
    legacy_text: dict[str, int] = field(default_factory=dict)
    mapped_codes: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    field_mapping: dict[str, str] = field(default_factory=dict)
    #: parcels checked against the administrative units they claim (see check_placement)
    placement_checked: int = 0
    #: parcels outside their units, imported anyway because of ``force``
    placement_forced: list[str] = field(default_factory=list)
    source_crs_object: object = field(default=None, repr=False)

    def summary(self) -> str:
        parts = [
            f"{self.features} parcels from {self.path} ({self.source_crs})",
            f"{self.inserted} new, {self.updated} updated",
        ]
        if self.swapped_xy:
            parts.append("x/y were swapped in the file (x = northing) and were corrected")
        if self.repaired:
            parts.append(
                f"{len(self.repaired)} geometries repaired: "
                + ", ".join(self.repaired[:10])
                + (" ..." if len(self.repaired) > 10 else "")
            )
        if self.legacy_text:
            parts.append(
                "legacy text converted: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.legacy_text.items()))
            )
        if self.mapped_codes:
            parts.append(
                "2014 codes mapped: "
                + ", ".join(f"{k}→{v}" for k, v in sorted(self.mapped_codes.items()))
            )
        if self.duplicates:
            parts.append(
                f"{len(self.duplicates)} duplicate keys (last kept): "
                + ", ".join(self.duplicates[:5])
            )
        if self.placement_forced:
            parts.append(
                f"{len(self.placement_forced)} parcels outside the administrative "
                "units they claim, imported because of --force: "
                + ", ".join(self.placement_forced[:5])
                + (" ..." if len(self.placement_forced) > 5 else "")
            )
        elif not self.placement_checked and self.features:
            parts.append("placement not checked (no administrative unit geometry loaded)")
        return "; ".join(parts)


@dataclass
class CodeTables:
    """Land-use codes per version and the 2014 → 2024 map, read from the database."""

    codes: dict[str, set[str]]
    map_2014: dict[str, str]

    @classmethod
    def load(cls, conn: Connection) -> CodeTables:
        codes: dict[str, set[str]] = {"2014": set(), "2024": set()}
        for code, version in conn.execute(text("SELECT code, version FROM land_use_codes")):
            codes.setdefault(version, set()).add(code)
        mapping = {
            r[0]: r[1]
            for r in conn.execute(text("SELECT code_2014, code_2024 FROM land_use_code_map"))
        }
        return cls(codes, mapping)

    def resolve(self, raw: str, version: str | None) -> tuple[str, str] | None:
        """(code_2024, raw_version) for a raw code, or None when unknown."""
        raw = raw.strip().upper()
        if version in (None, "", "auto"):
            if raw in self.codes.get("2024", ()):
                return raw, "2024"
            if raw in self.codes.get("2014", ()) and raw in self.map_2014:
                return self.map_2014[raw], "2014"
            return None
        if version == "2014":
            return (self.map_2014[raw], "2014") if raw in self.map_2014 else None
        return (raw, "2024") if raw in self.codes.get("2024", ()) else None


def _as_float(value) -> float | None:
    if value is None:
        return None
    try:
        f = float(str(value).replace(",", "."))
    except ValueError:
        return None
    return None if np.isnan(f) else f


def _looks_swapped(geoms: np.ndarray, crs) -> bool:
    """True when x values look like northings (or latitudes) and y like eastings (longitudes)
    for a CRS covering Viet Nam."""
    ok = geoms[~shapely.is_missing(geoms)]
    if not len(ok):
        return False
    xmin, ymin, xmax, ymax = shapely.total_bounds(ok)
    if crs.is_geographic:
        lat_like = lambda a, b: a >= 7.0 and b <= 24.5  # noqa: E731
        lon_like = lambda a, b: a >= 101.0 and b <= 118.0  # noqa: E731
        return lat_like(xmin, xmax) and lon_like(ymin, ymax)
    # eastings of TM-3/UTM zones within 100 km..900 km; Viet Nam's northings 0.9..2.7 Mm
    east_like = lambda a, b: a >= 50_000 and b <= 950_000  # noqa: E731
    north_like = lambda a, b: a >= 900_000 and b <= 2_700_000  # noqa: E731
    return north_like(xmin, xmax) and east_like(ymin, ymax)


def _swap(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, lambda xy: xy[:, ::-1].copy())


def read_cadastre(
    path: str | Path,
    codes: CodeTables,
    target_srid: int,
    *,
    crs: str | None = None,
    layer: str | None = None,
    field_map: dict[str, str] | None = None,
    commune_code: str | None = None,
    code_version: str | None = None,
    swap_xy: str = "auto",
) -> tuple[list[dict], CadastreReport]:
    """Read a cadastral file into rows for ``parcels`` (geometry WKB in ``target_srid``).

    Raises
    ------
    InputFileError
        Unreadable/empty file, missing key fields, unknown land-use codes.
    CRSError
        No or unknown CRS, coordinates that do not fit it.
    GeometryError
        Features without a usable polygon (their keys are named); nothing is imported.
    """
    path = Path(path)
    meta, wkb, fields = read_vector(path, layer)
    report = CadastreReport(path=str(path))
    names = list(fields)
    by_key = {_key(n): n for n in names}
    chosen: dict[str, str] = {}
    for target, aliases in FIELD_ALIASES.items():
        if field_map and target in field_map:
            if field_map[target] not in fields:
                raise InputFileError(
                    f"{path}: field '{field_map[target]}' (mapped to {target}) does not exist; "
                    f"fields: {', '.join(names)}."
                )
            chosen[target] = field_map[target]
            continue
        for alias in (_key(target), *aliases):
            if alias in by_key:
                chosen[target] = by_key[alias]
                break
    report.field_mapping = chosen
    required = ["sheet_number", "parcel_number", "land_use_code"]
    if not commune_code:
        required.insert(0, "commune_code")
    missing = [r for r in required if r not in chosen]
    if missing:
        raise InputFileError(
            f"{path}: no field for {', '.join(missing)} (fields: {', '.join(names)}); "
            "map them with --field TARGET=NAME"
            + (" or give --commune" if "commune_code" in missing else "")
            + "."
        )

    def column(target: str):
        return fields[chosen[target]] if target in chosen else None

    src_text = crs or meta.get("crs")
    if not src_text:
        raise CRSError(f"{path}: has no coordinate reference system; pass --crs (e.g. EPSG:5897).")
    src = parse_crs(src_text, what=f"{path}: CRS")
    report.source_crs = f"EPSG:{src.to_epsg()}" if src.to_epsg() else src.name
    geoms = shapely.from_wkb(np.asarray(wkb, dtype=object), on_invalid="ignore")
    if swap_xy == "yes" or (swap_xy == "auto" and _looks_swapped(geoms, src)):
        geoms = _swap(geoms)
        report.swapped_xy = True
    # repair before transforming (validity is defined in the source plane)
    keys: list[str] = []
    com_col, sheet_col, parcel_col = (
        column("commune_code"),
        column("sheet_number"),
        column("parcel_number"),
    )
    unrepairable: list[str] = []
    for i in range(len(geoms)):
        com = (as_str(com_col[i]) if com_col is not None else None) or commune_code or "?"
        key = f"{com}/{as_str(sheet_col[i]) or '?'}/{as_str(parcel_col[i]) or '?'}"
        keys.append(key)
        g = geoms[i]
        if g is None or g.is_empty:
            unrepairable.append(key)
            continue
        if not shapely.is_valid(g):
            fixed = polygonal(shapely.make_valid(g))
            if fixed is None:
                unrepairable.append(key)
                continue
            report.repaired.append(key)
            geoms[i] = fixed
        else:
            poly = polygonal(g)
            if poly is None:
                unrepairable.append(key)
                continue
            geoms[i] = poly
    if unrepairable:
        raise GeometryError(
            f"{path}: {len(unrepairable)} parcels have no usable polygon geometry "
            f"({', '.join(unrepairable[:10])}{' ...' if len(unrepairable) > 10 else ''}); "
            "nothing was imported."
        )
    target = parse_crs(target_srid)
    src_centroids = shapely.centroid(geoms)
    try:
        out = transform_geometries(geoms, src, target)
        lonlat = transform_geometries(src_centroids, src, 4326)
    except CRSError as exc:
        raise CRSError(f"{path}: {exc}") from exc
    _check_in_vietnam(path, lonlat, src)
    out = np.array(
        [polygonal(shapely.make_valid(g)) if not shapely.is_valid(g) else g for g in out],
        dtype=object,
    )

    # text fields: legacy encodings → Unicode
    text_targets = ("owner_name", "address", "term", "origin", "owner_class")
    texts: dict[str, list[str | None]] = {}
    for t in text_targets:
        col = column(t)
        vals: list[str | None] = []
        for v in col if col is not None else [None] * len(out):
            s = as_str(v)
            if s:
                s, enc = repair_legacy(s)
                if enc:
                    report.legacy_text[enc] = report.legacy_text.get(enc, 0) + 1
            vals.append(s)
        texts[t] = vals

    area_col, legal_col = column("area"), column("legal_area")
    code_col, ver_col = column("land_use_code"), column("code_version")
    old_col = column("old_commune_code")
    rows: dict[tuple[str, str, str], dict] = {}
    unknown: list[str] = []
    for i, geom in enumerate(out):
        com = (as_str(com_col[i]) if com_col is not None else None) or commune_code
        sheet, parcel = as_str(sheet_col[i]), as_str(parcel_col[i])
        if not com or not sheet or not parcel:
            raise InputFileError(f"{path}: feature {i + 1} ({keys[i]}) has an empty key field.")
        raw_code_field = as_str(code_col[i]) or ""
        uses = [
            (m.group(1).upper(), _as_float(m.group(2)) if m.group(2) else None)
            for m in _MULTI_CODE_RE.finditer(raw_code_field)
        ]
        if not uses:
            unknown.append(f"{keys[i]} ('{raw_code_field}')")
            continue
        version = (as_str(ver_col[i]) if ver_col is not None else None) or code_version
        resolved = [codes.resolve(c, version) for c, _ in uses]
        if any(r is None for r in resolved):
            unknown.append(f"{keys[i]} ('{raw_code_field}')")
            continue
        main_raw = uses[0][0]
        main_2024, raw_version = resolved[0]
        if raw_version == "2014" and main_raw != main_2024:
            report.mapped_codes[main_raw] = main_2024
        area = round(float(geom.area), 1)
        legal = _as_float(legal_col[i]) if legal_col is not None else None
        if legal is None and area_col is not None:
            legal = _as_float(area_col[i])
        land_uses = [
            {
                "code": r[0],
                "code_raw": c,
                "area_m2": a,
                "term": texts["term"][i],
                "origin": texts["origin"][i],
            }
            for (c, a), r in zip(uses, resolved, strict=True)
        ]
        key = (com, sheet, parcel)
        if key in rows:
            report.duplicates.append("/".join(key))
        rows[key] = {
            "commune_code": com,
            "old_commune_code": as_str(old_col[i]) if old_col is not None else None,
            "sheet_number": sheet,
            "parcel_number": parcel,
            "area_m2": area,
            "legal_area_m2": legal,
            "land_use_code": main_2024,
            "land_use_code_raw": main_raw,
            "land_use_code_version": raw_version,
            "land_uses": json.dumps(land_uses, ensure_ascii=False),
            "owner_class": texts["owner_class"][i],
            "owner_name": texts["owner_name"][i],
            "address": texts["address"][i],
            "source_file": path.name,
            "wkb": shapely.to_wkb(geom, hex=True),
            "lon": float(lonlat[i].x),
            "lat": float(lonlat[i].y),
            # the centroid in the file's own plane: the placement check re-reads it in
            # other CRSs to name the one the file is really in
            "src_x": float(src_centroids[i].x),
            "src_y": float(src_centroids[i].y),
        }
    if unknown:
        raise InputFileError(
            f"{path}: {len(unknown)} parcels have unknown land-use codes "
            f"({', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}); nothing was imported."
        )
    report.features = len(rows)
    report.source_crs_object = src
    return list(rows.values()), report


def _check_in_vietnam(path: Path, lonlat: np.ndarray, src) -> None:
    pts = lonlat[~shapely.is_missing(lonlat)]
    if not len(pts):
        return
    xmin, ymin, xmax, ymax = shapely.total_bounds(pts)
    if not (
        np.isfinite([xmin, ymin, xmax, ymax]).all()
        and xmin >= 100.0
        and xmax <= 120.0
        and ymin >= 5.0
        and ymax <= 25.0
    ):
        raise CRSError(
            f"{path}: coordinates do not fall in Viet Nam once read as {src.name}; "
            "is the CRS right (pass --crs), or are x and y swapped (--swap-xy)?"
        )


UPSERT_PARCEL = """
INSERT INTO parcels (commune_code, old_commune_code, sheet_number, parcel_number, area_m2,
                     legal_area_m2, land_use_code, land_use_code_raw, land_use_code_version,
                     land_uses, owner_class, owner_name, address, source_file, imported_at, geom)
VALUES (:commune_code, :old_commune_code, :sheet_number, :parcel_number, :area_m2,
        :legal_area_m2, :land_use_code, :land_use_code_raw, :land_use_code_version,
        CAST(:land_uses AS jsonb), :owner_class, :owner_name, :address, :source_file, now(),
        ST_Multi(ST_SetSRID(ST_GeomFromWKB(decode(CAST(:wkb AS text), 'hex')), {srid})))
ON CONFLICT (commune_code, old_commune_code, sheet_number, parcel_number) DO UPDATE SET
    area_m2 = EXCLUDED.area_m2, legal_area_m2 = EXCLUDED.legal_area_m2,
    land_use_code = EXCLUDED.land_use_code, land_use_code_raw = EXCLUDED.land_use_code_raw,
    land_use_code_version = EXCLUDED.land_use_code_version, land_uses = EXCLUDED.land_uses,
    owner_class = EXCLUDED.owner_class, owner_name = EXCLUDED.owner_name,
    address = EXCLUDED.address, source_file = EXCLUDED.source_file, imported_at = now(),
    geom = EXCLUDED.geom
RETURNING (xmax = 0) AS inserted
"""


def _current_communes(conn: Connection, rows: list[dict]) -> None:
    """Move pre-2025 commune codes to old_commune_code and set the current commune."""
    has_crosswalk = conn.execute(
        text("SELECT to_regclass('admin_unit_crosswalk') IS NOT NULL")
    ).scalar_one()
    if not has_crosswalk:
        return
    olds = sorted({r["commune_code"] for r in rows})
    walk: dict[str, list[str]] = {}
    for old, new in conn.execute(
        text(
            "SELECT old_code, new_code FROM admin_unit_crosswalk WHERE old_code = ANY(:c) "
            "ORDER BY old_code, new_code"
        ),
        {"c": olds},
    ):
        walk.setdefault(old, []).append(new)
    for r in rows:
        if r["old_commune_code"]:
            continue  # the file says which is old and which is current
        news = walk.get(r["commune_code"])
        if not news:
            continue
        old = r["commune_code"]
        new = news[0]
        if len(news) > 1:
            hit = conn.execute(
                text(
                    "SELECT code FROM admin_units WHERE code = ANY(:codes) AND geom IS NOT NULL "
                    "AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) "
                    "ORDER BY valid_from DESC LIMIT 1"
                ),
                {"codes": news, "lon": r["lon"], "lat": r["lat"]},
            ).scalar()
            new = hit or new
        r["old_commune_code"] = r["old_commune_code"] or old
        r["commune_code"] = new


@contextmanager
def transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """One transaction on an Engine, or a savepoint inside a Connection's transaction."""
    if isinstance(bind, Connection):
        with bind.begin_nested():
            yield bind
    else:
        with bind.begin() as conn:
            yield conn


#: How far (m) a parcel's centroid may lie outside the units it claims: administrative
#: boundaries are published generalised (the shipped ones: about 1:50,000), so a parcel on a
#: commune border may fall a little outside it. A wrong VN-2000 projection moves parcels by
#: hundreds of metres (EPSG:3405 read as 5897: ~685 m) to kilometres.
PLACEMENT_TOLERANCE_M = 150.0

_PLACEMENT_SQL = text(
    """
    WITH p AS (
        SELECT i, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS pt, codes
        FROM unnest(CAST(:i AS int[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]),
                    CAST(:codes AS text[])) AS t(i, lon, lat, codes)
    )
    SELECT p.i, min(CASE WHEN ST_Intersects(u.geom, p.pt) THEN 0.0
                         ELSE ST_Distance(u.geom::geography, p.pt::geography) END) AS distance
    FROM p JOIN admin_units u
      ON u.code = ANY(string_to_array(p.codes, ',')) AND u.geom IS NOT NULL
    GROUP BY p.i
    """
)


def _claimed_units(conn: Connection, rows: list[dict]) -> list[str]:
    """Per row, the comma-separated codes of the units it claims that have an outline: its
    commune and its pre-2025 commune; failing those (old communes often have no outline), the
    unit(s) above them (the former district)."""
    codes = sorted({c for r in rows for c in (r["commune_code"], r["old_commune_code"]) if c})
    parents = dict(
        conn.execute(
            text(
                "SELECT DISTINCT ON (code) code, parent_code FROM admin_units "
                "WHERE code = ANY(:c) AND parent_code IS NOT NULL ORDER BY code, valid_from DESC"
            ),
            {"c": codes},
        ).all()
    )
    outlined = {
        c
        for (c,) in conn.execute(
            text("SELECT DISTINCT code FROM admin_units WHERE geom IS NOT NULL AND code = ANY(:c)"),
            {"c": codes + sorted(set(parents.values()))},
        )
    }
    out = []
    for r in rows:
        own = [c for c in (r["commune_code"], r["old_commune_code"]) if c]
        units = [c for c in own if c in outlined]
        if not units:
            units = [parents[c] for c in own if parents.get(c) in outlined]
        out.append(",".join(units))
    return out


def _distances(conn: Connection, idx: list[int], lon, lat, codes: list[str]) -> dict[int, float]:
    if not idx:
        return {}
    return {
        int(i): float(d)
        for i, d in conn.execute(
            _PLACEMENT_SQL,
            {
                "i": idx,
                "lon": [float(v) for v in lon],
                "lat": [float(v) for v in lat],
                "codes": codes,
            },
        )
    }


def check_placement(
    conn: Connection,
    rows: list[dict],
    report: CadastreReport,
    path: Path,
    tolerance_m: float = PLACEMENT_TOLERANCE_M,
    force: bool = False,
) -> None:
    """Refuse parcels that lie outside the administrative units they claim.

    A wrong declared CRS (e.g. EPSG:3405 on coordinates in EPSG:5897) moves every parcel by
    hundreds of metres and would overwrite the right ones. Each parcel's centroid must lie in
    (or within ``tolerance_m`` of) its commune, its pre-2025 commune or that commune's
    district, where one of them has an outline. When parcels do not, the file's coordinates
    are read in each of :data:`CANDIDATE_CRSS` and the error names the CRS that puts them in
    their units. Parcels whose units have no outline are not checked; ``force`` imports anyway
    (the report lists the parcels outside).

    Raises
    ------
    CRSError
        Parcels outside their units by more than ``tolerance_m`` (and not ``force``).
    """
    if not rows:
        return
    claimed = _claimed_units(conn, rows)
    idx = list(range(len(rows)))
    dist = _distances(conn, idx, [r["lon"] for r in rows], [r["lat"] for r in rows], claimed)
    report.placement_checked = len(dist)
    outside = sorted((i for i, d in dist.items() if d > tolerance_m), key=lambda i: -dist[i])
    if not outside:
        return
    keys = [
        "/".join(str(r[k]) for k in ("commune_code", "sheet_number", "parcel_number")) for r in rows
    ]
    if force:
        report.placement_forced = [keys[i] for i in outside]
        return
    src = report.source_crs_object
    declared = report.source_crs or "the declared CRS"
    worst = outside[0]
    msg = (
        f"{path}: {len(outside)} of {len(dist)} parcels lie outside the administrative "
        f"units they claim by more than {tolerance_m:.0f} m once read as {declared} "
        f"(e.g. {keys[worst]}: {dist[worst]:,.0f} m from "
        f"{claimed[worst].split(',')[0]})"
    )
    likely = _likely_crs(conn, rows, list(dist), claimed, src, tolerance_m)
    if likely is not None:
        code, name, share = likely
        msg += (
            f"; the coordinates fit EPSG:{code} ({name}: {share:.0%} of them inside "
            f"their units): import with --crs EPSG:{code}"
        )
    else:
        msg += "; no VN-2000 or WGS 84 CRS puts them there: check the CRS and the commune codes"
    raise CRSError(msg + ", or --force to import them as they are. Nothing was imported.")


def _likely_crs(
    conn: Connection,
    rows: list[dict],
    checked: list[int],
    claimed: list[str],
    src,
    tolerance_m: float,
    sample: int = 200,
) -> tuple[int, str, float] | None:
    """The candidate CRS putting the most checked parcels in their units (≥ 90 % of them)."""
    step = max(1, len(checked) // sample)
    idx = checked[::step][:sample]
    pts = np.array([shapely.Point(rows[i]["src_x"], rows[i]["src_y"]) for i in idx], dtype=object)

    def fit(xy: np.ndarray) -> float:
        if not ((xy[:, 0] > 100) & (xy[:, 0] < 120) & (xy[:, 1] > 5) & (xy[:, 1] < 25)).all():
            return 0.0  # not in Viet Nam
        d = _distances(conn, idx, xy[:, 0], xy[:, 1], [claimed[i] for i in idx])
        return sum(1 for v in d.values() if v <= tolerance_m) / len(idx)

    return likely_crs(pts, src, 4326, fit)


#: A re-import moving the parcels already stored by more than this (median of their centroid
#: shifts, m) is taken for a wrong CRS, not a re-survey.
DISPLACEMENT_TOLERANCE_M = 50.0

_STORED_CENTROIDS_SQL = text(
    """
    SELECT t.i, ST_X(ST_Centroid(p.geom)) AS x, ST_Y(ST_Centroid(p.geom)) AS y
    FROM unnest(CAST(:i AS int[]), CAST(:com AS text[]), CAST(:old AS text[]),
                CAST(:sheet AS text[]), CAST(:parcel AS text[]))
         AS t(i, com, old, sheet, parcel)
    JOIN parcels p ON p.commune_code = t.com AND p.old_commune_code IS NOT DISTINCT FROM t.old
     AND p.sheet_number = t.sheet AND p.parcel_number = t.parcel
    """
)


def check_displacement(
    conn: Connection,
    rows: list[dict],
    report: CadastreReport,
    path: Path,
    srid: int,
    tolerance_m: float = DISPLACEMENT_TOLERANCE_M,
    force: bool = False,
) -> None:
    """Refuse a re-import that would move the parcels already stored, all alike, by more than
    ``tolerance_m`` (median): that is a wrong CRS (EPSG:3405 declared on EPSG:5897
    coordinates moves them ~685 m north and stays inside their communes), not a re-survey. The
    error names the CRS that puts them back where they are; ``force`` imports anyway.
    """
    if not rows or force:
        return
    found = conn.execute(
        _STORED_CENTROIDS_SQL,
        {
            "i": list(range(len(rows))),
            "com": [r["commune_code"] for r in rows],
            "old": [r["old_commune_code"] for r in rows],
            "sheet": [r["sheet_number"] for r in rows],
            "parcel": [r["parcel_number"] for r in rows],
        },
    ).all()
    if not found:
        return
    idx = [int(f.i) for f in found]
    stored = np.array([[f.x, f.y] for f in found], dtype=float)
    new = shapely.get_coordinates(
        shapely.centroid(shapely.from_wkb(np.array([rows[i]["wkb"] for i in idx], dtype=object)))
    )
    shift = np.hypot(*(new - stored).T)
    median = float(np.median(shift))
    if median <= tolerance_m:
        return
    moved = int((shift > tolerance_m).sum())
    declared = report.source_crs or "the declared CRS"
    msg = (
        f"{path}: {moved} of the {len(idx)} parcels already stored would move by "
        f"{median:,.0f} m (median) once read as {declared}: a wrong CRS rather than a "
        "re-survey"
    )
    pts = np.array([shapely.Point(rows[i]["src_x"], rows[i]["src_y"]) for i in idx], dtype=object)
    best = likely_crs(
        pts,
        report.source_crs_object,
        srid,
        lambda xy: float(np.mean(np.hypot(*(xy - stored).T) <= tolerance_m)),
    )
    if best is not None:
        msg += (
            f"; the coordinates fit EPSG:{best[0]} ({best[1]}: {best[2]:.0%} of them back "
            f"within {tolerance_m:.0f} m of the stored parcels): import with "
            f"--crs EPSG:{best[0]}"
        )
    raise CRSError(msg + ", or --force to move them. Nothing was imported.")


def import_cadastre(bind: Engine | Connection, path: str | Path, **options) -> CadastreReport:
    """Import a cadastral file into ``parcels`` in one transaction (all or nothing).

    Options are those of :func:`read_cadastre` (crs, layer, field_map, commune_code,
    code_version, swap_xy), ``commune_codes``: "old" (default: the records carry pre-2025
    commune codes, as field records still do; they are kept as old_commune_code and the current
    commune comes from the crosswalk) or "new" (codes are current, taken as they are), and
    ``force``: import parcels that lie outside the administrative units they claim, or that
    would move the parcels already stored all alike (by default both fail, naming the CRS the
    coordinates are likely in: :func:`check_placement`, :func:`check_displacement`).
    """
    with transaction(bind) as conn:
        srid = storage_srid(conn)
        codes = CodeTables.load(conn)
        commune_codes = options.pop("commune_codes", "old")
        force = options.pop("force", False)
        rows, report = read_cadastre(path, codes, srid, **options)
        if commune_codes == "old":
            _current_communes(conn, rows)
        check_placement(conn, rows, report, Path(path), force=force)
        check_displacement(conn, rows, report, Path(path), int(srid), force=force)
        stmt = text(UPSERT_PARCEL.format(srid=int(srid)))
        for row in rows:
            if conn.execute(stmt, row).scalar_one():
                report.inserted += 1
            else:
                report.updated += 1
    return report


def sample_transformer_check() -> tuple[float, float]:
    """(lon, lat) of a point of former Hà Nam in EPSG:5897, through the pinned transformation.

    >>> lon, lat = sample_transformer_check()
    >>> round(lon, 2), round(lat, 2)
    (105.84, 20.5)
    """
    return make_transformer(5897, 4326).transform(587000.0, 2268000.0)
