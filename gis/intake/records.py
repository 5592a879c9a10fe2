"""What the intake has handled (table ``imagery_intake``, migration 0010) and the area it watches.

Every write is its own short transaction (a savepoint inside a caller's transaction), so one
scene that fails never undoes what was recorded for the others.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import shapely
from sqlalchemy import Connection, Engine, text

from gis.cadastre import transaction
from gis.errors import ConfigurationError

Bind = Engine | Connection


@dataclass
class Seen:
    """What the table says about one item: its status, attempts and next attempt."""

    id: int
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    reason: str | None


def seen(bind: Bind, source: str, collection: str, item_ids: list[str]) -> dict[str, Seen]:
    """Rows of ``imagery_intake`` for these items (by item id)."""
    if not item_ids:
        return {}
    with transaction(bind) as conn:
        rows = conn.execute(
            text(
                "SELECT item_id, id, status, attempts, next_attempt_at, reason FROM imagery_intake "
                "WHERE source = :s AND collection = :c AND item_id = ANY(:ids)"
            ),
            {"s": source, "c": collection, "ids": list(item_ids)},
        ).all()
    return {r[0]: Seen(r[1], r[2], r[3], r[4], r[5]) for r in rows}


def due(row: Seen | None, now: dt.datetime) -> bool:
    """True when an item should be (re)tried: never seen, or failed and its wait is over."""
    if row is None:
        return True
    if row.status != "failed":
        return False
    return row.next_attempt_at is None or row.next_attempt_at <= now


def record(
    bind: Bind,
    *,
    source: str,
    collection: str,
    item_id: str,
    status: str,
    reason: str | None = None,
    acquired_at: dt.datetime | None = None,
    cloud_cover: float | None = None,
    usable_share: float | None = None,
    local_path: str | None = None,
    href: str | None = None,
    local_bytes: int | None = None,
    properties: dict | None = None,
    footprint=None,
    retry_after: dt.timedelta | None = None,
) -> int:
    """Insert or update the item's row; a repeated failure counts one more attempt.

    ``retry_after``: for ``failed``, the wait before the next attempt (the caller doubles it
    per attempt).
    """
    wkb = shapely.to_wkb(footprint, hex=True) if footprint is not None else None
    with transaction(bind) as conn:
        return conn.execute(
            text(
                """
            INSERT INTO imagery_intake (source, collection, item_id, acquired_at, cloud_cover,
                usable_share, status, reason, local_path, href, local_bytes, properties,
                footprint, next_attempt_at)
            VALUES (:source, :collection, :item_id, :acquired_at, :cloud_cover, :usable_share,
                :status, :reason, :local_path, :href, :local_bytes,
                CAST(:properties AS jsonb),
                CASE WHEN CAST(:wkb AS text) IS NULL THEN NULL
                     ELSE ST_SetSRID(ST_GeomFromWKB(decode(CAST(:wkb AS text), 'hex')), 4326) END,
                CASE WHEN CAST(:failed AS boolean)
                     THEN now() + make_interval(secs => CAST(:retry AS double precision)) END)
            ON CONFLICT ON CONSTRAINT uq_imagery_intake_item DO UPDATE SET
                acquired_at = COALESCE(EXCLUDED.acquired_at, imagery_intake.acquired_at),
                cloud_cover = COALESCE(EXCLUDED.cloud_cover, imagery_intake.cloud_cover),
                usable_share = COALESCE(EXCLUDED.usable_share, imagery_intake.usable_share),
                status = EXCLUDED.status, reason = EXCLUDED.reason,
                local_path = EXCLUDED.local_path,
                href = COALESCE(EXCLUDED.href, imagery_intake.href),
                local_bytes = EXCLUDED.local_bytes,
                properties = COALESCE(EXCLUDED.properties, imagery_intake.properties),
                footprint = COALESCE(EXCLUDED.footprint, imagery_intake.footprint),
                attempts = imagery_intake.attempts + 1,
                next_attempt_at = EXCLUDED.next_attempt_at,
                updated_at = now()
            RETURNING id
            """
            ),
            {
                "source": source,
                "collection": collection,
                "item_id": item_id,
                "acquired_at": acquired_at,
                "cloud_cover": cloud_cover,
                "usable_share": usable_share,
                "status": status,
                "reason": reason,
                "local_path": local_path,
                "href": href,
                "local_bytes": local_bytes,
                "properties": json.dumps(properties) if properties is not None else None,
                "wkb": wkb,
                "failed": status == "failed",
                "retry": (retry_after or dt.timedelta(0)).total_seconds(),
            },
        ).scalar_one()


def area_of_interest(
    bind: Bind,
    province_code: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
):
    """The watched area as a shapely geometry in EPSG:4326.

    ``bbox`` when given; else the union of the current administrative units that have a
    geometry (of ``province_code`` when given: the province itself and every unit in it).

    Raises
    ------
    ConfigurationError
        No unit with a geometry is stored (for that province).
    """
    if bbox is not None:
        return shapely.box(*bbox)
    with transaction(bind) as conn:
        wkb = conn.execute(
            text(
                """
            SELECT ST_AsBinary(ST_UnaryUnion(ST_Collect(ST_MakeValid(geom))))
            FROM admin_units
            WHERE geom IS NOT NULL AND (valid_to IS NULL OR valid_to > now())
              AND (CAST(:p AS varchar) IS NULL OR code = CAST(:p AS varchar)
                   OR province_code = CAST(:p AS varchar))
            """
            ),
            {"p": province_code},
        ).scalar_one()
    if wkb is None:
        which = f"of province {province_code} " if province_code else ""
        raise ConfigurationError(
            f"No current administrative unit {which}with a geometry is stored: load them "
            "(`ioc admin load-reference` or `ioc admin import`) or set IOC_INTAKE_BBOX."
        )
    return shapely.from_wkb(bytes(wkb))
