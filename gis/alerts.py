"""Parcel alerts: tie a run's land changes to parcels and their legal land-use code, apply the
rules of a configuration file (default ``gis/alert_rules.yaml``), and list or summarise alerts.

Per parcel the changed area and fraction are computed in PostGIS (storage CRS, projected, so
areas are in m²), per observed from→to cover class; the rules decide which combinations of
legal code and observed cover are likely violations, and how severe. Seasonal change on
cropland (vegetation ↔ water ↔ bare) never counts (see the rules file).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import Connection, text

from gis.db.models import COVER_CLASSES
from gis.errors import ConfigurationError

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "alert_rules.yaml"
SEVERITY_ORDER = ("high", "medium", "low")
COVER = COVER_CLASSES  # defined once, with the schema


class Rule(BaseModel):
    id: str = Field(max_length=64)
    description: str = ""
    legal: list[str]
    to: list[str]
    from_: list[str] | None = Field(default=None, alias="from")
    min_area_m2: float = 0.0
    min_fraction: float = 0.0
    severity: dict[str, float]
    #: severity -> the calibrated confidence the rule's changes need for it (area-weighted
    #: mean of their polygons' ``confidence``); below it the alert is one level lower
    #: (high -> medium -> low), never dropped. Empty: confidence is not looked at.
    min_confidence: dict[str, float] = {}

    @field_validator("min_confidence")
    @classmethod
    def _confidence(cls, v):
        bad = [k for k in v if k not in SEVERITY_ORDER]
        if bad:
            raise ValueError(f"min_confidence keys must be among {list(SEVERITY_ORDER)}")
        if any(not 0.0 <= x <= 1.0 for x in v.values()):
            raise ValueError("min_confidence values must be between 0 and 1")
        return v

    @field_validator("to", "from_")
    @classmethod
    def _classes(cls, v):
        if v is not None:
            bad = [c for c in v if c not in COVER]
            if bad:
                raise ValueError(f"unknown cover class(es) {bad}; use {list(COVER)}")
        return v

    @field_validator("severity")
    @classmethod
    def _severity(cls, v):
        bad = [k for k in v if k not in SEVERITY_ORDER]
        if bad or not v:
            raise ValueError(f"severity keys must be among {list(SEVERITY_ORDER)}")
        return v


class Seasonal(BaseModel):
    classes: list[str] = ["vegetation", "water", "bare"]
    legal: list[str] = []


class RuleSet(BaseModel):
    version: int = 1
    groups: dict[str, list[str]] = {}
    seasonal: Seasonal = Seasonal()
    rules: list[Rule]

    def codes(self, names: list[str]) -> set[str]:
        """Expand group names to land-use codes."""
        out: set[str] = set()
        for n in names:
            out.update(self.groups.get(n, [n]))
        return out


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read and validate a rules file (default: the shipped one).

    Raises
    ------
    ConfigurationError
        The file is missing, not YAML, or does not validate (the message names the file).
    """
    path = Path(path) if path else DEFAULT_RULES_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{path}: rules file not found.") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigurationError(f"{path}: not valid YAML ({problem}{where}).") from exc
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigurationError(f"{path}: invalid rules ({where}: {err['msg']}).") from exc


OVERLAY_SQL = text(
    """
    SELECT p.id AS parcel_id, p.commune_code, p.land_use_code, ST_Area(p.geom) AS parcel_area,
           c.from_class, c.to_class, c.id AS change_id, c.confidence,
           ST_Area(ST_Intersection(p.geom, c.geom)) AS area
    FROM land_changes c
    JOIN parcels p ON p.geom && c.geom AND ST_Intersects(p.geom, c.geom)
    WHERE c.run_id = :run_id
    """
)


@dataclass
class Alert:
    """One parcel's alert in one run: every rule that fired (``rules``, highest severity first;
    ``rule`` is the first of them, the one that set ``severity``), and that rule's changed area,
    fraction and observed classes."""

    parcel_id: int
    commune_code: str | None
    legal_code: str
    rule: str
    severity: str
    changed_area_m2: float
    changed_fraction: float
    observed_from: str | None
    observed_to: str | None
    change_id: int | None
    rules: list[str] = field(default_factory=list)


def evaluate(rows: list[dict], rules: RuleSet) -> list[Alert]:
    """Apply the rules to overlay rows (one per parcel × change polygon): one alert per parcel,
    listing every rule that fired, with the highest severity (ties: the rule listed first in
    the rules file).

    >>> rs = load_rules()
    >>> rows = [{"parcel_id": 1, "commune_code": "13324", "land_use_code": "LUC",
    ...          "parcel_area": 500.0, "from_class": "vegetation", "to_class": "built_up",
    ...          "change_id": 7, "area": 200.0},
    ...         {"parcel_id": 2, "commune_code": "13324", "land_use_code": "LUC",
    ...          "parcel_area": 500.0, "from_class": "vegetation", "to_class": "water",
    ...          "change_id": 8, "area": 500.0}]
    >>> [(a.parcel_id, a.rule, a.severity, a.rules) for a in evaluate(rows, rs)]
    [(1, 'rice_land_lost', 'high', ['rice_land_lost', 'agricultural_to_built_up'])]
    """
    seasonal_codes = rules.codes(rules.seasonal.legal)
    seasonal_classes = set(rules.seasonal.classes)
    by_parcel: dict[int, list[dict]] = {}
    for r in rows:
        by_parcel.setdefault(r["parcel_id"], []).append(r)
    alerts: list[Alert] = []
    compiled = [(rule, rules.codes(rule.legal)) for rule in rules.rules]
    for pid, items in by_parcel.items():
        first = items[0]
        code = first["land_use_code"]
        parcel_area = float(first["parcel_area"]) or 1.0
        fired: list[Alert] = []
        for rule, legal in compiled:
            if code not in legal:
                continue
            matching = []
            for it in items:
                frm, to = it["from_class"], it["to_class"]
                if code in seasonal_codes and frm in seasonal_classes and to in seasonal_classes:
                    continue  # crop cycle, not conversion
                if to not in rule.to or frm == to:
                    continue  # only land that became `to` (already built-up is not new)
                if rule.from_ is not None and frm not in rule.from_:
                    continue
                matching.append(it)
            if not matching:
                continue
            area = sum(float(it["area"]) for it in matching)
            fraction = min(area / parcel_area, 1.0)
            if area < rule.min_area_m2 or fraction < rule.min_fraction:
                continue
            severity = next(
                (s for s in SEVERITY_ORDER if s in rule.severity and fraction >= rule.severity[s]),
                None,
            )
            if severity is None:
                continue
            severity = _confidence_severity(rule, severity, matching)
            main = max(matching, key=lambda it: float(it["area"]))
            fired.append(
                Alert(
                    parcel_id=pid,
                    commune_code=first["commune_code"],
                    legal_code=code,
                    rule=rule.id,
                    severity=severity,
                    changed_area_m2=round(area, 1),
                    changed_fraction=round(fraction, 4),
                    observed_from=main["from_class"],
                    observed_to=main["to_class"],
                    change_id=main["change_id"],
                )
            )
        if fired:
            # stable sort: equal severities keep the order of the rules file
            fired.sort(key=lambda a: SEVERITY_ORDER.index(a.severity))
            top = fired[0]
            top.rules = [a.rule for a in fired]
            alerts.append(top)
    return alerts


def _confidence_severity(rule: Rule, severity: str, matching: list[dict]) -> str:
    """Lower ``severity`` one level at a time while the matching changes' area-weighted
    calibrated confidence is under the rule's ``min_confidence`` for it (unknown confidence:
    unchanged).

    >>> r = Rule(id="r", legal=["LUC"], to=["built_up"], severity={"high": 0.0},
    ...          min_confidence={"high": 0.5})
    >>> _confidence_severity(r, "high", [{"area": 100.0, "confidence": 0.3}])
    'medium'
    >>> _confidence_severity(r, "high", [{"area": 100.0, "confidence": 0.8}])
    'high'
    """
    if not rule.min_confidence:
        return severity
    known = [
        (float(it["area"]), float(it["confidence"]))
        for it in matching
        if it.get("confidence") is not None
    ]
    area = sum(a for a, _ in known)
    if not known or area <= 0:
        return severity
    confidence = sum(a * c for a, c in known) / area
    level = SEVERITY_ORDER.index(severity)
    while level < len(SEVERITY_ORDER) - 1 and confidence < rule.min_confidence.get(
        SEVERITY_ORDER[level], 0.0
    ):
        level += 1
    return SEVERITY_ORDER[level]


INSERT_ALERT = text(
    """
    INSERT INTO parcel_alerts (run_id, parcel_id, change_id, commune_code, changed_area_m2,
        changed_fraction, legal_code, observed_from, observed_to, rule, rules, severity)
    VALUES (:run_id, :parcel_id, :change_id, :commune_code, :changed_area_m2,
        :changed_fraction, :legal_code, :observed_from, :observed_to, :rule,
        CAST(:rules AS varchar[]), :severity)
    """
)

UPDATE_ALERT = text(
    """
    UPDATE parcel_alerts SET change_id = :change_id, commune_code = :commune_code,
        changed_area_m2 = :changed_area_m2, changed_fraction = :changed_fraction,
        legal_code = :legal_code, observed_from = :observed_from, observed_to = :observed_to,
        rule = :rule, rules = CAST(:rules AS varchar[]), severity = :severity,
        superseded_at = NULL
    WHERE id = :id
    """
)


@dataclass
class AlertUpdate:
    """What storing a run's alerts did (see :func:`create_alerts`)."""

    alerts: list[Alert]
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    superseded_reviewed: int = 0


def create_alerts(conn: Connection, run_id: int, rules: RuleSet) -> AlertUpdate:
    """Compute the alerts of a run and write them (inside the caller's transaction).

    A run stored for the first time gets its alerts inserted. For a run stored again (same
    scenes and method, see :func:`gis.change.store.store_run`) the alerts are reconciled by
    parcel: an alert raised again is updated in place (same id, its review kept); a new one is
    inserted; one no longer raised is deleted if nobody reviewed it, and otherwise kept with
    ``superseded_at`` set (a review is never lost silently).
    """
    rows = [dict(r._mapping) for r in conn.execute(OVERLAY_SQL, {"run_id": run_id})]
    alerts = evaluate(rows, rules)
    existing = {
        r.parcel_id: r
        for r in conn.execute(
            text(
                "SELECT id, parcel_id, review_status FROM parcel_alerts WHERE run_id = :r "
                "FOR UPDATE"
            ),
            {"r": run_id},
        )
    }
    out = AlertUpdate(alerts)
    for a in alerts:
        values = {**a.__dict__, "rules": list(a.rules)}
        old = existing.pop(a.parcel_id, None)
        if old is None:
            conn.execute(INSERT_ALERT, {"run_id": run_id, **values})
            out.inserted += 1
        else:
            conn.execute(UPDATE_ALERT, {"id": old.id, **values})
            out.updated += 1
    for old in existing.values():
        if old.review_status == "new":
            conn.execute(text("DELETE FROM parcel_alerts WHERE id = :i"), {"i": old.id})
            out.removed += 1
        else:
            conn.execute(
                text(
                    "UPDATE parcel_alerts SET superseded_at = coalesce(superseded_at, now()) "
                    "WHERE id = :i"
                ),
                {"i": old.id},
            )
            out.superseded_reviewed += 1
    return out


def list_alerts(
    conn: Connection,
    *,
    run_id: int | None = None,
    commune: str | None = None,
    severity: str | None = None,
    status: str | None = None,
    since: dt.date | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Alerts with their parcel key, newest first; geometry as GeoJSON in EPSG:4326.

    ``rules`` is every rule that fired, comma-separated, highest severity first;
    ``superseded_at`` is set on a reviewed alert that a re-run no longer raises.
    """
    where, params = ["TRUE"], {}
    if run_id is not None:
        where.append("a.run_id = :run_id")
        params["run_id"] = run_id
    if commune:
        where.append("(a.commune_code = :commune OR p.old_commune_code = :commune)")
        params["commune"] = commune
    if severity:
        where.append("a.severity = :severity")
        params["severity"] = severity
    if status:
        where.append("a.review_status = :status")
        params["status"] = status
    if since:
        where.append("a.created_at >= :since")
        params["since"] = since
    sql = f"""
        SELECT a.id, a.run_id, a.parcel_id, a.commune_code, p.old_commune_code,
               p.sheet_number, p.parcel_number, a.legal_code, a.rule,
               array_to_string(CASE WHEN cardinality(a.rules) = 0 THEN ARRAY[a.rule]
                               ELSE a.rules END, ',') AS rules, a.severity,
               a.changed_area_m2, a.changed_fraction, a.observed_from, a.observed_to,
               a.review_status, a.created_at, a.superseded_at,
               ST_AsGeoJSON(ST_Transform(p.geom, 4326), 7) AS geometry
        FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id
        WHERE {" AND ".join(where)}
        ORDER BY a.created_at DESC, a.id DESC
        {"LIMIT :limit" if limit else ""}
    """
    if limit:
        params["limit"] = limit
    return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def summarise_alerts(conn: Connection, run_id: int | None = None) -> list[dict]:
    """Alert counts and changed area per commune (current administrative unit) and severity
    (alerts a re-run no longer raises, ``superseded_at`` set, are not counted)."""
    sql = """
        SELECT a.commune_code, max(u.name) AS commune_name,
               count(*) FILTER (WHERE a.severity = 'high') AS high,
               count(*) FILTER (WHERE a.severity = 'medium') AS medium,
               count(*) FILTER (WHERE a.severity = 'low') AS low,
               count(*) AS total, round(sum(a.changed_area_m2)::numeric, 1) AS changed_area_m2
        FROM parcel_alerts a
        LEFT JOIN admin_units u ON u.code = a.commune_code AND u.level = 'commune'
             AND (u.valid_to IS NULL OR u.valid_to > now())
        WHERE (CAST(:run_id AS integer) IS NULL OR a.run_id = :run_id)
          AND a.superseded_at IS NULL
        GROUP BY a.commune_code ORDER BY total DESC, a.commune_code
    """
    return [dict(r._mapping) for r in conn.execute(text(sql), {"run_id": run_id})]
