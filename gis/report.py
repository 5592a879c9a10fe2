"""Land reports for officers: one A4 document per parcel alert, and a commune summary.

``alert_report(connection, alert_id)`` gathers what an officer files or takes to the field, in
Vietnamese: the parcel (key, owner as recorded, legal land-use code and its name), the change
(observed from→to classes, changed area and share of the parcel, the scenes' dates and ids),
the before/after image chips stored with the alert (:mod:`gis.evidence`; a report without them
says so), a locator map and a parcel sketch drawn as SVG from PostGIS geometries (no tiles, no
internet), the rules that fired, and the review with its history from the audit trail.
``commune_report(connection, code)`` summarises a commune: alerts by severity and status,
changed area by class and by legal code, a map of the commune with its alerts, and the list.

``render_html`` renders either as one self-contained page (inline CSS, SVG and images);
``render_pdf`` prints that page on A4 with headless Chromium (the templates' ``@page`` rule),
with the DejaVu fonts for Vietnamese glyphs. Nothing is fetched from the network.

>>> fmt_number(1955.3, 1), fmt_percent(0.8147), fmt_number(12345)
('1.955,3', '81,5 %', '12.345')
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import math
import os
import shutil
import subprocess
import tempfile
import zoneinfo
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Connection, text

from gis import audit
from gis.errors import IocError, RecordNotFoundError

TEMPLATES = Path(__file__).resolve().parent / "templates"
TIMEZONE = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")

SEVERITY_VI = {"high": "Cao", "medium": "Trung bình", "low": "Thấp"}
STATUS_VI = {"new": "Chưa xem xét", "confirmed": "Đã xác nhận vi phạm", "dismissed": "Đã bác bỏ"}
COVER_VI = {
    "built_up": "Công trình xây dựng",
    "vegetation": "Thảm thực vật",
    "water": "Mặt nước",
    "bare": "Đất trống",
}
KIND_VI = {"conversion": "chuyển đổi", "seasonal": "theo mùa vụ", "other": "khác"}
RULE_VI = {
    "rice_land_lost": "Mất đất trồng lúa: đất lúa (LUC/LUK, được pháp luật bảo vệ) nay có công "
    "trình xây dựng",
    "agricultural_to_built_up": "Đất nông nghiệp chuyển sang xây dựng (có thể chuyển mục đích "
    "trái phép hoặc lấn chiếm)",
    "agricultural_to_bare": "Đất trồng cây lâu năm hoặc đất rừng bị phát quang thành đất trống "
    "(san lấp, làm mặt bằng)",
}
MOMENT_VI = {"before": "Trước", "after": "Sau"}
STYLE_VI = {"truecolor": "màu tự nhiên", "falsecolor": "màu giả hồng ngoại (NIR)"}
SEVERITY_COLOUR = {"high": "#c62828", "medium": "#ef6c00", "low": "#f9a825"}


class ReportError(IocError, RuntimeError):
    """A report could not be printed (Chromium missing or failing): not the user's input."""

    exit_code = 1


# ------------------------------------------------------------------------------ formatting
def fmt_number(value: Any, decimals: int = 0) -> str:
    """A number the Vietnamese way: ``.`` between thousands, ``,`` before decimals."""
    if value is None:
        return "—"
    s = f"{float(value):,.{decimals}f}"
    return s.replace(",", " ").replace(".", ",").replace(" ", ".")


def fmt_percent(fraction: Any, decimals: int = 1) -> str:
    return "—" if fraction is None else f"{fmt_number(100 * float(fraction), decimals)} %"


def fmt_time(value: Any, with_time: bool = True) -> str:
    """dd/mm/yyyy [HH:MM] in Vietnam time."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(TIMEZONE)
        return value.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")
    return value.strftime("%d/%m/%Y")


# ------------------------------------------------------------------------------ geometry
def _storage(conn: Connection) -> tuple[int, int]:
    """(storage SRID of parcels, the SRID to transform through: its pinned VN-2000 twin of
    migration 0005 when there is one, so WGS 84 outlines land where they belong)."""
    srid = int(conn.execute(text("SELECT Find_SRID('public', 'parcels', 'geom')")).scalar_one())
    twin = srid * 10 + 900000
    pinned = conn.execute(
        text("SELECT 1 FROM spatial_ref_sys WHERE srid = :s AND auth_name IS NULL"), {"s": twin}
    ).scalar()
    return srid, (twin if pinned else srid)


def _nice_length(span: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^k m) about a fifth of ``span``."""
    target = max(span / 5, 1e-6)
    power = 10 ** math.floor(math.log10(target))
    return max(m * power for m in (1, 2, 5) if m * power <= target)


def _map_frame(
    box: tuple[float, float, float, float], aspect: float = 0.75, margin: float = 0.08
) -> dict[str, Any]:
    """The SVG frame of a map around ``box`` (xmin, ymin, xmax, ymax in metres): origin,
    viewBox (y down, as ST_AsSVG writes it), scale bar and sizes in map units."""
    xmin, ymin, xmax, ymax = box
    w, h = max(xmax - xmin, 1.0), max(ymax - ymin, 1.0)
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    if h / w > aspect:
        w = h / aspect
    else:
        h = w * aspect
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    x0, y0 = cx - w / 2, cy - h / 2  # origin of the translated geometries
    bar = _nice_length(w)
    unit = w / 100  # 1 % of the width
    return {
        "x0": x0,
        "y0": y0,
        "w": round(w, 2),
        "h": round(h, 2),
        "viewbox": f"0 {-h:.2f} {w:.2f} {h:.2f}",
        "unit": round(unit, 3),
        "font": round(2.6 * unit, 3),
        "bar": {
            "x": round(3 * unit, 2),
            "y": round(-3 * unit, 2),
            "len": round(bar, 2),
            "label": f"{fmt_number(bar / 1000, 1 if bar < 1000 else 0)} km"
            if bar >= 500
            else f"{fmt_number(bar)} m",
        },
        "north": {"x": round(w - 5 * unit, 2), "y": round(-h + 4 * unit, 2)},
    }


def _labelled(units: list[dict[str, Any]], frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Mark which unit names fit: their anchor not within 8 % of the frame's edges."""
    w, h = frame["w"], frame["h"]
    for u in units:
        u["label"] = 0.08 * w < u["lx"] < 0.92 * w and -0.94 * h < u["ly"] < -0.06 * h
    return units


def _svg(expr: str) -> str:
    """SQL: the geometry ``expr`` as an SVG path relative to the frame origin (metres, 1 dp)."""
    return f"ST_AsSVG(ST_Translate({expr}, -CAST(:x0 AS float8), -CAST(:y0 AS float8)), 0, 1)"


# ------------------------------------------------------------------------------ look-ups
def _land_use_names(conn: Connection) -> dict[tuple[str, str], str]:
    return {
        (r.code, r.version): r.name_vi
        for r in conn.execute(text("SELECT code, version, name_vi FROM land_use_codes"))
    }


def _units(conn: Connection, codes: list[str]) -> dict[str, dict[str, Any]]:
    """Administrative units by code (the current one when a code has several periods)."""
    out: dict[str, dict[str, Any]] = {}
    rows = conn.execute(
        text(
            "SELECT code, name, unit_type, level, province_code, valid_from, valid_to, geom IS NOT NULL AS has_geom "
            "FROM admin_units WHERE code = ANY(:codes) "
            "ORDER BY (valid_to IS NULL OR valid_to > now()), valid_from"
        ),
        {"codes": codes},
    ).mappings()
    for r in rows:
        out[r["code"]] = dict(r)  # last wins: the current period
    return out


def _unit_label(unit: dict[str, Any] | None, code: str | None) -> str:
    if not code:
        return "—"
    if unit is None:
        return f"mã {code} (chưa có trong danh mục đơn vị hành chính)"
    kind = (unit["unit_type"] or "").strip()
    kind = kind[:1].upper() + kind[1:]
    name = unit["name"]
    if kind and not name.lower().startswith(kind.lower()):
        name = f"{kind} {name}"
    return f"{name} ({code})"


def _evidence(conn: Connection, alert_id: int) -> dict[str, Any]:
    """The alert's image chips (``alert_evidence``, written by :mod:`gis.evidence`) as data URIs."""
    if conn.execute(text("SELECT to_regclass('alert_evidence')")).scalar() is None:
        return {"available": False, "chips": [], "missing": []}
    rows = (
        conn.execute(
            text(
                "SELECT e.moment, e.style, e.path, e.scene_id, s.acquired_at FROM alert_evidence e "
                "LEFT JOIN imagery_scenes s ON s.id = e.scene_id WHERE e.alert_id = :a"
            ),
            {"a": alert_id},
        )
        .mappings()
        .all()
    )
    chips, missing = [], []
    for r in sorted(rows, key=lambda r: (r["style"] != "truecolor", r["moment"] != "before")):
        path = Path(r["path"])
        try:
            data = path.read_bytes()
        except OSError:
            missing.append(path.name)
            continue
        chips.append(
            {
                "moment": r["moment"],
                "style": r["style"],
                "label": f"{MOMENT_VI.get(r['moment'], r['moment'])} — {STYLE_VI.get(r['style'], r['style'])}",
                "date": fmt_time(r["acquired_at"], with_time=False),
                "scene_id": r["scene_id"],
                "data_uri": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
            }
        )
    return {"available": bool(chips), "chips": chips, "missing": missing}


# ------------------------------------------------------------------------------ alert report
_ALERT_SQL = """
SELECT a.id, a.run_id, a.parcel_id, a.change_id, a.commune_code, a.changed_area_m2,
       a.changed_fraction, a.legal_code, a.observed_from, a.observed_to, a.rule,
       CASE WHEN cardinality(a.rules) = 0 THEN ARRAY[a.rule] ELSE a.rules END AS rules,
       a.severity, a.review_status, a.reviewer, a.review_note, a.reviewed_at, a.created_at,
       a.superseded_at,
       p.commune_code AS parcel_commune_code, p.old_commune_code, p.sheet_number, p.parcel_number,
       p.area_m2, p.legal_area_m2, p.land_use_code, p.land_use_code_raw, p.land_use_code_version,
       p.land_uses, p.owner_class, p.owner_name, p.address,
       r.method, r.model_version, r.status AS run_status, r.finished_at,
       r.before_scene_id, r.after_scene_id
FROM parcel_alerts a
JOIN parcels p ON p.id = a.parcel_id
JOIN detection_runs r ON r.id = a.run_id
WHERE a.id = :id
"""

_SCENE_SQL = """
SELECT id, path, sensor, acquired_at, cloud_fraction, metadata
FROM imagery_scenes WHERE id = :id
"""

# the run's change polygons on the parcel: what was observed there, by polygon
_PARCEL_CHANGES_SQL = """
SELECT c.id, c.from_class, c.to_class, c.kind, c.date_before, c.date_after, c.confidence,
       ST_Area(ST_Intersection(c.geom, p.geom)) AS area_on_parcel
FROM land_changes c JOIN parcels p ON p.id = :parcel
WHERE c.run_id = :run AND c.geom && p.geom AND ST_Intersects(c.geom, p.geom)
ORDER BY area_on_parcel DESC
"""


OWNER_HIDDEN = "không công bố (cần token cán bộ địa chính)"


def alert_report(
    conn: Connection, alert_id: int, *, rules: Any = None, show_owner: bool = True
) -> dict[str, Any]:
    """Everything the report of one parcel alert shows (see the module docstring).

    Parameters
    ----------
    conn
        A database connection (read only).
    alert_id
        ``parcel_alerts.id``.
    rules
        The :class:`gis.alerts.RuleSet` whose thresholds are quoted (default: the shipped rules).
    show_owner
        Whether the owner's name as recorded is shown (the API shows it to officers only, as
        the published parcels never carry it).

    Raises
    ------
    RecordNotFoundError
        No parcel alert ``alert_id``.
    """
    from gis.alerts import load_rules

    if isinstance(alert_id, bool) or not isinstance(alert_id, int) or not 0 < alert_id < 2**63:
        raise RecordNotFoundError(f"No parcel alert {str(alert_id)[:40]}.")
    a = conn.execute(text(_ALERT_SQL), {"id": alert_id}).mappings().first()
    if a is None:
        raise RecordNotFoundError(f"No parcel alert {alert_id}.")
    a = dict(a)
    names = _land_use_names(conn)
    units = _units(conn, [c for c in (a["commune_code"], a["old_commune_code"]) if c])

    scenes = {}
    for moment, sid in (("before", a["before_scene_id"]), ("after", a["after_scene_id"])):
        row = conn.execute(text(_SCENE_SQL), {"id": sid}).mappings().first() if sid else None
        scenes[moment] = (
            None
            if row is None
            else {
                "id": row["id"],
                "name": Path(row["path"]).name,
                "sensor": row["sensor"] or "—",
                "date": fmt_time(row["acquired_at"], with_time=False),
                "cloud": fmt_percent(row["cloud_fraction"])
                if row["cloud_fraction"] is not None
                else "—",
                "item_id": (row["metadata"] or {}).get("item_id")
                or (row["metadata"] or {}).get("id"),
            }
        )
    changes = [
        dict(r)
        for r in conn.execute(
            text(_PARCEL_CHANGES_SQL), {"parcel": a["parcel_id"], "run": a["run_id"]}
        ).mappings()
    ]
    # dates of a run stored without scene records: those of its change polygons
    for moment, key in (("before", "date_before"), ("after", "date_after")):
        if scenes[moment] is None:
            dates = sorted({c[key] for c in changes if c[key]})
            scenes[moment] = {
                "id": None,
                "name": "—",
                "sensor": "—",
                "cloud": "—",
                "item_id": None,
                "date": ", ".join(fmt_time(d, with_time=False) for d in dates) or "—",
            }

    rule_set = rules if rules is not None else load_rules()
    by_id = {r.id: r for r in rule_set.rules}
    fired = []
    for rid in a["rules"]:
        rule = by_id.get(rid)
        threshold = None
        if rule is not None:
            parts = []
            if rule.min_area_m2:
                parts.append(f"≥ {fmt_number(rule.min_area_m2)} m²")
            if rule.min_fraction:
                parts.append(f"≥ {fmt_percent(rule.min_fraction, 0)} diện tích thửa")
            threshold = ", ".join(parts) or "mọi diện tích"
        fired.append(
            {
                "id": rid,
                "text": RULE_VI.get(rid) or (rule.description if rule else rid),
                "threshold": threshold,
                "main": rid == a["rule"],
            }
        )

    history = []
    for h in audit.history(conn, "parcel_alerts", alert_id):
        old, new = h["old_value"] or {}, h["new_value"] or {}
        history.append(
            {
                "when": fmt_time(h["occurred_at"]),
                "actor": h["actor"],
                "role": h["role"] or "—",
                "channel": "API" if h["channel"] == "api" else "dòng lệnh",
                "from": STATUS_VI.get(old.get("review_status"), old.get("review_status") or "—"),
                "to": STATUS_VI.get(new.get("review_status"), new.get("review_status") or "—"),
                "reviewer": new.get("reviewer") or "—",
                "note": h["note"],
            }
        )

    legal_name = names.get((a["legal_code"], "2024")) or names.get((a["land_use_code"], "2024"))
    raw = None
    if a["land_use_code_raw"] and (a["land_use_code_raw"], a["land_use_code_version"]) != (
        a["legal_code"],
        "2024",
    ):
        raw = {
            "code": a["land_use_code_raw"],
            "version": a["land_use_code_version"],
            "name": names.get((a["land_use_code_raw"], a["land_use_code_version"])),
        }
    other_uses = []
    for use in a["land_uses"] or []:
        if isinstance(use, dict) and use.get("code"):
            other_uses.append(
                {
                    "code": use["code"],
                    "name": names.get((use["code"], "2024")),
                    "area": fmt_number(use.get("area_m2"), 1) if use.get("area_m2") else None,
                }
            )

    key_commune = a["old_commune_code"] or a["parcel_commune_code"]
    return {
        "kind": "alert",
        "commune_code": a["commune_code"],
        "generated_at": fmt_time(dt.datetime.now(dt.UTC)),
        "alert": {
            "id": a["id"],
            "run_id": a["run_id"],
            "created_at": fmt_time(a["created_at"]),
            "severity": a["severity"],
            "severity_vi": SEVERITY_VI.get(a["severity"], a["severity"]),
            "superseded_at": fmt_time(a["superseded_at"]) if a["superseded_at"] else None,
            "observed_from": COVER_VI.get(a["observed_from"], a["observed_from"] or "—"),
            "observed_to": COVER_VI.get(a["observed_to"], a["observed_to"] or "—"),
            "changed_area": fmt_number(a["changed_area_m2"], 1),
            "changed_share": fmt_percent(a["changed_fraction"]),
            "method": a["method"],
            "model_version": a["model_version"] or "—",
        },
        "parcel": {
            "key": f"{key_commune}/{a['sheet_number']}/{a['parcel_number']}",
            "sheet": a["sheet_number"],
            "number": a["parcel_number"],
            "commune": _unit_label(units.get(a["commune_code"]), a["commune_code"]),
            "old_commune": _unit_label(units.get(a["old_commune_code"]), a["old_commune_code"])
            if a["old_commune_code"]
            else None,
            "owner": (a["owner_name"] or "không ghi trong hồ sơ") if show_owner else OWNER_HIDDEN,
            "owner_class": a["owner_class"],
            "address": a["address"],
            "legal_code": a["legal_code"],
            "legal_name": legal_name or "(không có trong danh mục)",
            "raw": raw,
            "uses": other_uses,
            "area": fmt_number(a["area_m2"], 1),
            "legal_area": fmt_number(a["legal_area_m2"], 1)
            if a["legal_area_m2"] is not None
            else None,
        },
        "scenes": scenes,
        "changes": [
            {
                "from": COVER_VI.get(c["from_class"], c["from_class"] or "—"),
                "to": COVER_VI.get(c["to_class"], c["to_class"] or "—"),
                "kind": KIND_VI.get(c["kind"], c["kind"] or "—"),
                "area": fmt_number(c["area_on_parcel"], 1),
                "confidence": fmt_percent(c["confidence"], 0)
                if c["confidence"] is not None
                else "—",
            }
            for c in changes
        ],
        "rules": fired,
        "review": {
            "status": a["review_status"],
            "status_vi": STATUS_VI.get(a["review_status"], a["review_status"]),
            "reviewer": a["reviewer"],
            "note": a["review_note"],
            "reviewed_at": fmt_time(a["reviewed_at"]) if a["reviewed_at"] else None,
            "history": history,
        },
        "evidence": _evidence(conn, alert_id),
        "maps": _alert_maps(conn, a),
    }


def _alert_maps(conn: Connection, a: dict[str, Any]) -> dict[str, Any]:
    """A locator map (the commune and its neighbours, the parcel marked) and a parcel sketch
    (the parcel, its neighbours with their numbers, the run's change polygons), as SVG parts."""
    srid, pin = _storage(conn)
    in_storage = f"ST_SetSRID(ST_Transform(u.geom, {pin}), {srid})"
    parcel = conn.execute(
        text(
            "SELECT ST_XMin(geom) x1, ST_YMin(geom) y1, ST_XMax(geom) x2, ST_YMax(geom) y2 "
            "FROM parcels WHERE id = :p"
        ),
        {"p": a["parcel_id"]},
    ).one()
    commune = (
        conn.execute(
            text(
                f"SELECT u.code, u.name, ST_XMin(g) x1, ST_YMin(g) y1, ST_XMax(g) x2, ST_YMax(g) y2 FROM "
                f"(SELECT u.code, u.name, {in_storage} AS g FROM admin_units u WHERE u.code = :c "
                f"AND u.geom IS NOT NULL ORDER BY (u.valid_to IS NULL OR u.valid_to > now()) DESC, "
                f"u.valid_from DESC LIMIT 1) u"
            ),
            {"c": a["commune_code"]},
        )
        .mappings()
        .first()
    )

    # locator: the commune (or 1.5 km around the parcel when its outline is not stored)
    if commune is not None:
        box = (
            min(commune["x1"], parcel.x1),
            min(commune["y1"], parcel.y1),
            max(commune["x2"], parcel.x2),
            max(commune["y2"], parcel.y2),
        )
    else:
        cx, cy = (parcel.x1 + parcel.x2) / 2, (parcel.y1 + parcel.y2) / 2
        box = (cx - 750, cy - 750, cx + 750, cy + 750)
    frame = _map_frame(box)
    params = {"x0": frame["x0"], "y0": frame["y0"]}
    env = (
        f"ST_MakeEnvelope(CAST(:x0 AS float8), CAST(:y0 AS float8), CAST(:x0 AS float8) + {frame['w']}, "
        f"CAST(:y0 AS float8) + {frame['h']}, {srid})"
    )
    units = [
        dict(r)
        for r in conn.execute(
            text(
                f"SELECT u.code, u.name, {_svg(in_storage)} AS path, u.code = :c AS own, "
                f"ST_X(ST_PointOnSurface({in_storage})) - :x0 AS lx, -(ST_Y(ST_PointOnSurface({in_storage})) - :y0) AS ly "
                f"FROM admin_units u WHERE u.level = 'commune' AND u.geom IS NOT NULL "
                f"AND (u.valid_to IS NULL OR u.valid_to > now()) AND {in_storage} && {env}"
            ),
            {**params, "c": a["commune_code"]},
        ).mappings()
    ]
    marker = (
        conn.execute(
            text(
                f"SELECT {_svg('geom')} AS path, ST_X(ST_Centroid(geom)) - :x0 AS x, "
                f"-(ST_Y(ST_Centroid(geom)) - :y0) AS y FROM parcels WHERE id = :p"
            ),
            {**params, "p": a["parcel_id"]},
        )
        .mappings()
        .one()
    )
    locator = {
        "frame": frame,
        "units": _labelled(units, frame),
        "parcel": dict(marker),
        "has_outline": commune is not None,
    }

    # sketch: the parcel and what is around it
    size = max(parcel.x2 - parcel.x1, parcel.y2 - parcel.y1)
    pad = max(40.0, 0.6 * size)
    sbox = (parcel.x1 - pad, parcel.y1 - pad, parcel.x2 + pad, parcel.y2 + pad)
    sframe = _map_frame(sbox, aspect=0.75, margin=0.0)
    sparams = {"x0": sframe["x0"], "y0": sframe["y0"]}
    senv = (
        f"ST_MakeEnvelope(CAST(:x0 AS float8), CAST(:y0 AS float8), CAST(:x0 AS float8) + {sframe['w']}, "
        f"CAST(:y0 AS float8) + {sframe['h']}, {srid})"
    )
    neighbours = [
        dict(r)
        for r in conn.execute(
            text(
                f"SELECT id, parcel_number, sheet_number, {_svg('geom')} AS path, id = :p AS own, "
                f"ST_X(ST_PointOnSurface(geom)) - :x0 AS lx, -(ST_Y(ST_PointOnSurface(geom)) - :y0) AS ly, "
                f"ST_Area(geom) / {sframe['w'] * sframe['h']} AS share "
                f"FROM parcels WHERE geom && {senv} ORDER BY own, id LIMIT 400"
            ),
            {**sparams, "p": a["parcel_id"]},
        ).mappings()
    ]
    changes = [
        dict(r)
        for r in conn.execute(
            text(
                f"SELECT to_class, {_svg(f'ST_Intersection(geom, {senv})')} AS path FROM land_changes "
                f"WHERE run_id = :r AND geom && {senv} AND NOT ST_IsEmpty(ST_Intersection(geom, {senv}))"
            ),
            {**sparams, "r": a["run_id"]},
        ).mappings()
    ]
    sketch = {"frame": sframe, "parcels": neighbours, "changes": changes}
    return {"locator": locator, "sketch": sketch}


# ------------------------------------------------------------------------------ commune report
_COMMUNE_ALERTS_SQL = """
SELECT a.id, a.severity, a.review_status, a.legal_code, a.observed_from, a.observed_to,
       a.changed_area_m2, a.changed_fraction, a.rule, a.created_at, a.reviewer,
       p.sheet_number, p.parcel_number, p.owner_name, a.parcel_id,
       ST_X(ST_PointOnSurface(p.geom)) AS px, ST_Y(ST_PointOnSurface(p.geom)) AS py
FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id
WHERE (a.commune_code = :c OR p.old_commune_code = :c) AND a.superseded_at IS NULL
ORDER BY array_position(ARRAY['high','medium','low']::varchar[], a.severity), a.changed_area_m2 DESC, a.id
"""


def commune_report(conn: Connection, code: str, *, show_owner: bool = True) -> dict[str, Any]:
    """The alert summary of one commune (current or pre-2025 code): counts by severity and
    review status, changed area by observed class and by legal code, a map, the alert list
    (with the owners' names as recorded unless ``show_owner`` is false).

    Alerts a later run no longer raises (``superseded_at`` set) are left out and counted apart.

    Raises
    ------
    RecordNotFoundError
        ``code`` is neither an administrative unit's code nor the commune of any alert.
    """
    code = str(code).strip()
    units = _units(conn, [code])
    rows = [dict(r) for r in conn.execute(text(_COMMUNE_ALERTS_SQL), {"c": code}).mappings()]
    superseded = conn.execute(
        text(
            "SELECT count(*) FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id "
            "WHERE (a.commune_code = :c OR p.old_commune_code = :c) AND a.superseded_at IS NOT NULL"
        ),
        {"c": code},
    ).scalar_one()
    if code not in units and not rows and not superseded:
        raise RecordNotFoundError(
            f"No commune {code[:40]}: it is not the code of an administrative unit and no alert names it."
        )
    unit = units.get(code)
    names = _land_use_names(conn)

    by_status = {s: {"high": 0, "medium": 0, "low": 0, "total": 0} for s in STATUS_VI}
    for r in rows:
        cell = by_status.setdefault(
            r["review_status"], {"high": 0, "medium": 0, "low": 0, "total": 0}
        )
        cell[r["severity"]] = cell.get(r["severity"], 0) + 1
        cell["total"] += 1
    totals = {s: sum(1 for r in rows if r["severity"] == s) for s in SEVERITY_VI}
    area_total = sum(float(r["changed_area_m2"]) for r in rows)

    def grouped(key, label) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            g = out.setdefault(
                r[key] or "—",
                {"key": r[key] or "—", "label": label(r[key]), "alerts": 0, "area": 0.0},
            )
            g["alerts"] += 1
            g["area"] += float(r["changed_area_m2"])
        items = sorted(out.values(), key=lambda g: -g["area"])
        top = max([g["area"] for g in items] + [1e-9])
        for g in items:
            g["share"] = fmt_percent(g["area"] / area_total if area_total else 0)
            g["bar"] = round(100 * g["area"] / top, 1)
            g["area"] = fmt_number(g["area"], 1)
        return items

    by_class = grouped("observed_to", lambda c: COVER_VI.get(c, c or "—"))
    by_change = []
    pairs: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        p = pairs.setdefault(
            (r["observed_from"], r["observed_to"]),
            {
                "label": f"{COVER_VI.get(r['observed_from'], r['observed_from'] or '—')} → "
                f"{COVER_VI.get(r['observed_to'], r['observed_to'] or '—')}",
                "alerts": 0,
                "area": 0.0,
            },
        )
        p["alerts"] += 1
        p["area"] += float(r["changed_area_m2"])
    for p in sorted(pairs.values(), key=lambda p: -p["area"]):
        by_change.append({**p, "area": fmt_number(p["area"], 1)})
    by_code = grouped("legal_code", lambda c: f"{c} — {names.get((c, '2024'), '')}".rstrip(" —"))

    return {
        "kind": "commune",
        "show_owner": show_owner,
        "generated_at": fmt_time(dt.datetime.now(dt.UTC)),
        "commune": {
            "code": code,
            "label": _unit_label(unit, code),
            "old": unit is not None
            and unit["valid_to"] is not None
            and unit["valid_to"] < dt.date.today(),
        },
        "totals": {
            "alerts": len(rows),
            **totals,
            "area": fmt_number(area_total, 1),
            "superseded": int(superseded),
            "reviewed": sum(1 for r in rows if r["review_status"] != "new"),
        },
        "by_status": [
            {"status": s, "label": STATUS_VI.get(s, s), **c} for s, c in by_status.items()
        ],
        "by_class": by_class,
        "by_change": by_change,
        "by_code": by_code,
        "alerts": [
            {
                "n": i + 1,
                "id": r["id"],
                "severity": r["severity"],
                "severity_vi": SEVERITY_VI.get(r["severity"], r["severity"]),
                "status_vi": STATUS_VI.get(r["review_status"], r["review_status"]),
                "parcel": f"{r['sheet_number']}/{r['parcel_number']}",
                "owner": (r["owner_name"] or "—") if show_owner else None,
                "legal_code": r["legal_code"],
                "change": f"{COVER_VI.get(r['observed_from'], r['observed_from'] or '—')} → "
                f"{COVER_VI.get(r['observed_to'], r['observed_to'] or '—')}",
                "area": fmt_number(r["changed_area_m2"], 1),
                "share": fmt_percent(r["changed_fraction"]),
                "created": fmt_time(r["created_at"], with_time=False),
            }
            for i, r in enumerate(rows)
        ],
        "map": _commune_map(conn, code, rows),
    }


def _commune_map(conn: Connection, code: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The commune (its outline, or its new commune's after the 2025 merger), its neighbours
    and its alerts numbered as in the list, coloured by severity."""
    srid, pin = _storage(conn)
    in_storage = f"ST_SetSRID(ST_Transform(u.geom, {pin}), {srid})"
    outline = (
        conn.execute(
            text(
                f"SELECT ST_XMin(g) x1, ST_YMin(g) y1, ST_XMax(g) x2, ST_YMax(g) y2, code FROM ("
                f"SELECT u.code, {in_storage} AS g FROM admin_units u WHERE u.geom IS NOT NULL AND (u.code = :c "
                f"OR u.code IN (SELECT new_code FROM admin_unit_crosswalk WHERE old_code = :c)) "
                f"ORDER BY u.code = :c DESC, (u.valid_to IS NULL OR u.valid_to > now()) DESC LIMIT 1) s"
            ),
            {"c": code},
        )
        .mappings()
        .first()
    )
    xs = [r["px"] for r in rows]
    ys = [r["py"] for r in rows]
    if outline is not None:
        box = (
            min([outline["x1"], *xs]),
            min([outline["y1"], *ys]),
            max([outline["x2"], *xs]),
            max([outline["y2"], *ys]),
        )
    elif rows:
        box = (min(xs) - 300, min(ys) - 300, max(xs) + 300, max(ys) + 300)
    else:
        return None
    frame = _map_frame(box, aspect=0.8)
    params = {"x0": frame["x0"], "y0": frame["y0"]}
    env = (
        f"ST_MakeEnvelope(CAST(:x0 AS float8), CAST(:y0 AS float8), CAST(:x0 AS float8) + {frame['w']}, "
        f"CAST(:y0 AS float8) + {frame['h']}, {srid})"
    )
    own = outline["code"] if outline is not None else None
    units = [
        dict(r)
        for r in conn.execute(
            text(
                f"SELECT u.code, u.name, {_svg(in_storage)} AS path, u.code = :own AS own, "
                f"ST_X(ST_PointOnSurface({in_storage})) - :x0 AS lx, -(ST_Y(ST_PointOnSurface({in_storage})) - :y0) AS ly "
                f"FROM admin_units u WHERE u.level = 'commune' AND u.geom IS NOT NULL "
                f"AND (u.valid_to IS NULL OR u.valid_to > now() OR u.code = :own) AND {in_storage} && {env}"
            ),
            {**params, "own": own},
        ).mappings()
    ]
    order = list(reversed(SEVERITY_VI))  # low first: high severity drawn on top

    def markers(f: dict[str, Any]) -> list[dict[str, Any]]:
        out = [
            {
                "n": i + 1,
                "x": round(r["px"] - f["x0"], 2),
                "y": round(-(r["py"] - f["y0"]), 2),
                "rank": order.index(r["severity"]) if r["severity"] in order else -1,
                "colour": SEVERITY_COLOUR.get(r["severity"], "#555"),
            }
            for i, r in enumerate(rows)
        ]
        return sorted(out, key=lambda m: m["rank"])

    result = {
        "frame": frame,
        "units": _labelled(units, frame),
        "markers": markers(frame),
        "has_outline": outline is not None,
        "zoom": None,
    }
    # alerts close together on a commune-wide map: a zoomed map of where they are, with parcels
    if rows and max(max(xs) - min(xs), max(ys) - min(ys)) < 0.3 * frame["w"]:
        pad = 120.0
        zbox = (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)
        zoom = _map_frame(zbox, aspect=0.8, margin=0.0)
        zparams = {"x0": zoom["x0"], "y0": zoom["y0"]}
        zenv = (
            f"ST_MakeEnvelope(CAST(:x0 AS float8), CAST(:y0 AS float8), CAST(:x0 AS float8) + "
            f"{zoom['w']}, CAST(:y0 AS float8) + {zoom['h']}, {srid})"
        )
        ids = [r["parcel_id"] for r in rows]
        parcels = [
            dict(r)
            for r in conn.execute(
                text(
                    f"SELECT {_svg('geom')} AS path, id = ANY(:ids) AS alerted FROM parcels "
                    f"WHERE geom && {zenv} ORDER BY alerted LIMIT 2000"
                ),
                {**zparams, "ids": ids},
            ).mappings()
        ]
        zoom_units = [
            dict(r)
            for r in conn.execute(
                text(
                    f"SELECT {_svg(in_storage)} AS path, u.code = :own AS own FROM admin_units u "
                    f"WHERE u.level = 'commune' AND u.geom IS NOT NULL AND (u.valid_to IS NULL OR "
                    f"u.valid_to > now() OR u.code = :own) AND {in_storage} && {zenv}"
                ),
                {**zparams, "own": own},
            ).mappings()
        ]
        result["zoom"] = {
            "frame": zoom,
            "parcels": parcels,
            "units": zoom_units,
            "markers": markers(zoom),
            "extent": {
                "x": round(zoom["x0"] - frame["x0"], 2),
                "y": round(-(zoom["y0"] + zoom["h"] - frame["y0"]), 2),
                "w": zoom["w"],
                "h": zoom["h"],
            },
        }
    return result


# ------------------------------------------------------------------------------ rendering
@functools.cache
def _env() -> Environment:
    """The templates' environment (built once: templates are compiled on first use)."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(SEVERITY_COLOUR=SEVERITY_COLOUR, COVER_VI=COVER_VI)
    return env


def render_html(report: dict[str, Any], *, base_url: str = "") -> str:
    """The report (from :func:`alert_report` or :func:`commune_report`) as one self-contained
    A4 HTML page; ``base_url`` prefixes the links to other reports (none when empty)."""
    template = {"alert": "alert_report.html", "commune": "commune_report.html"}[report["kind"]]
    return _env().get_template(template).render(**report, base_url=base_url.rstrip("/"))


def find_chromium() -> str | None:
    """The headless Chromium (or Chrome) on PATH, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render_pdf(html: str, *, chromium: str | None = None, timeout: float = 120.0) -> bytes:
    """Print an HTML report to an A4 PDF with headless Chromium, offline (the page needs
    nothing from the network: styles, maps and images are inline).

    Raises
    ------
    ReportError
        Chromium is missing, fails or prints nothing.
    """
    exe = chromium or find_chromium()
    if not exe:
        raise ReportError(
            "A PDF report needs Chromium (Debian package 'chromium'); it is not installed."
        )
    with tempfile.TemporaryDirectory(prefix="ioc-report-") as tmp:
        src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html, encoding="utf-8")
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--no-pdf-header-footer",
            "--run-all-compositor-stages-before-draw",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={out}",
            src.as_uri(),
        ]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                timeout=timeout,
                check=False,
                env=dict(os.environ, HOME=tmp),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ReportError(f"Chromium could not print the report: {exc}") from exc
        if not out.exists() or out.stat().st_size == 0:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise ReportError(f"Chromium printed no PDF (exit {proc.returncode}): {tail[0][:200]}")
        return out.read_bytes()
