"""Choosing scene pairs for change detection and running detection + parcel alerts on them.

A pair is (BEFORE, AFTER) with AFTER a scene the intake has processed and not yet paired.
BEFORE must be of the same season (days of the year within ``season_window_days``, whatever the
year: the rice cycle repeats, so a year-on-year comparison reads conversion, not crop stages),
at least ``min_gap_days`` older, overlapping AFTER by ``min_overlap`` of the smaller footprint.
Among those the least clouded wins (1 − usable share per SCL, else the catalogue's cloud
cover), then the closest day of the year, then the most recent.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import shapely
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from gis.cadastre import transaction
from gis.errors import IocError
from gis.intake.records import Bind
from gis.intake.settings import IntakeSettings

log = logging.getLogger("gis.intake.pairing")


@dataclass(frozen=True)
class Candidate:
    id: int
    acquired_at: dt.datetime
    cloud: float  # 0..1 over the area (1 - usable share), or the catalogue's cloud cover / 100
    path: str
    footprint: object = None  # shapely geometry in EPSG:4326, or None
    label: str = ""


def season_distance(a: dt.datetime, b: dt.datetime) -> int:
    """Days between the two dates' month-and-day, whatever the years, around the year end
    (0..183; 29 February counts as the 28th)."""
    best = 366
    for year in (a.year - 1, a.year, a.year + 1):
        try:
            other = dt.date(year, b.month, b.day)
        except ValueError:
            other = dt.date(year, 2, 28)
        best = min(
            best,
            abs((a.date() - other).days) if isinstance(a, dt.datetime) else abs((a - other).days),
        )
    return best


def overlap_share(a, b) -> float:
    if a is None or b is None:
        return 1.0  # unknown footprints: detection checks the overlap itself
    smaller = min(a.area, b.area)
    if smaller <= 0:
        return 0.0
    return float(shapely.intersection(a, b).area / smaller)


def choose_before(
    after: Candidate, pool: list[Candidate], settings: IntakeSettings
) -> Candidate | None:
    """The best BEFORE for ``after`` among ``pool`` (see the module docstring), or None."""
    best, best_key = None, None
    for c in pool:
        if c.id == after.id:
            continue
        gap = (after.acquired_at - c.acquired_at).days
        if gap < max(settings.min_gap_days, 1):
            continue
        dist = season_distance(after.acquired_at, c.acquired_at)
        if dist > settings.season_window_days:
            continue
        if overlap_share(after.footprint, c.footprint) < settings.min_overlap:
            continue
        key = (round(c.cloud, 2), dist, -c.acquired_at.timestamp())
        if best_key is None or key < best_key:
            best, best_key = c, key
    return best


def candidates(bind: Bind) -> tuple[list[Candidate], set[int]]:
    """Processed scenes (with a date) and the ids already used as AFTER of a pair."""
    with transaction(bind) as conn:
        rows = conn.execute(
            text(
                """
            SELECT id, acquired_at, COALESCE(1 - usable_share, cloud_cover / 100.0, 0),
                   local_path, ST_AsBinary(footprint), source || ':' || item_id
            FROM imagery_intake
            WHERE status = 'processed' AND acquired_at IS NOT NULL AND local_path IS NOT NULL
            """
            )
        ).all()
        paired = {r[0] for r in conn.execute(text("SELECT after_id FROM imagery_intake_pairs"))}
    pool = [
        Candidate(
            r[0],
            r[1],
            float(r[2]),
            r[3],
            shapely.from_wkb(bytes(r[4])) if r[4] is not None else None,
            r[5],
        )
        for r in rows
    ]
    return pool, paired


def _record_pair(
    conn,
    before: Candidate,
    after: Candidate,
    status: str,
    run_id=None,
    changes=None,
    alerts=None,
    error=None,
) -> None:
    conn.execute(
        text(
            """
        INSERT INTO imagery_intake_pairs (before_id, after_id, status, detection_run_id,
            changes, alerts, error)
        VALUES (:b, :a, :s, :r, :c, :al, :e)
        ON CONFLICT ON CONSTRAINT uq_imagery_intake_pairs DO NOTHING
        """
        ),
        {
            "b": before.id,
            "a": after.id,
            "s": status,
            "r": run_id,
            "c": changes,
            "al": alerts,
            "e": error,
        },
    )


def detect_pair(bind: Bind, before: Candidate, after: Candidate, land=None) -> dict:
    """Run change detection on the pair and store the run with its parcel alerts, and the pair,
    in one transaction; a failure is stored as a failed run and a failed pair.

    ``land``: :class:`gis.settings.LandSettings` (detector, model folder, rules); None = the
    defaults.
    """
    from gis.alerts import load_rules
    from gis.change.detect import DetectionConfig, detect_changes
    from gis.change.store import record_failed_run, store_run

    config = DetectionConfig()
    rules_file = None
    if land is not None:
        config = DetectionConfig(
            method=land.detector,
            model_dir=land.model_dir,
            tta=land.tta,
            dask_scheduler=land.dask_scheduler,
        )
        rules_file = land.rules_file
    params = {
        **config.as_dict(),
        "before": before.path,
        "after": after.path,
        "intake": {"before_id": before.id, "after_id": after.id},
    }
    log.info(
        "detecting changes between %s (%s) and %s (%s)",
        before.label,
        before.acquired_at.date(),
        after.label,
        after.acquired_at.date(),
    )
    try:
        rules = load_rules(rules_file)
        result = detect_changes(before.path, after.path, config)
        with transaction(bind) as conn:
            stored = store_run(conn, result, rules)
            _record_pair(
                conn,
                before,
                after,
                "succeeded",
                stored["run_id"],
                stored["changes"],
                stored["alerts"],
            )
        log.info(
            "run %s: %s change polygons, %s parcel alerts",
            stored["run_id"],
            stored["changes"],
            stored["alerts"],
        )
        return {"status": "succeeded", **stored}
    except SQLAlchemyError:
        raise  # the database is the problem: nothing recorded, the pair is tried next poll
    except Exception as exc:
        if isinstance(exc, IocError):
            error = str(exc)
            log.warning("detection between %s and %s failed: %s", before.label, after.label, error)
        else:  # a bug or an unforeseen input: recorded, so it is not retried every poll
            error = f"unexpected error: {type(exc).__name__}: {str(exc).strip()[:500]}"
            log.exception("detection between %s and %s failed", before.label, after.label)
        run_id = None
        try:
            run_id = record_failed_run(bind, config.method, params, error)
        except Exception as db_exc:  # the database itself may be the problem
            log.error("could not record the failed run: %s", str(db_exc).splitlines()[0])
        with transaction(bind) as conn:
            _record_pair(conn, before, after, "failed", run_id, error=error)
        return {"status": "failed", "error": error, "run_id": run_id}
