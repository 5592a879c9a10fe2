"""Storing a detection run: scenes, run, land changes and parcel alerts in one transaction.

A run that fails (bad input, or an error while storing) is recorded on its own, in a separate
transaction, as ``status='failed'`` with the error; nothing else of it is stored.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import shapely
from sqlalchemy import Connection, Engine, text

from gis.alerts import RuleSet, create_alerts
from gis.cadastre import transaction
from gis.change.detect import DetectionResult
from gis.crs import transform_geometries
from gis.db.session import storage_srid


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _insert_scene(conn: Connection, info: dict) -> int:
    ring = info["footprint"]
    wkt = "POLYGON((" + ", ".join(f"{x:.8f} {y:.8f}" for x, y in ring) + "))"
    return conn.execute(text(
        """
        INSERT INTO imagery_scenes (path, sensor, acquired_at, crs, transform, width, height,
            bands, cloud_fraction, nodata_fraction, metadata, footprint)
        VALUES (:path, :sensor, :acquired_at, :crs, CAST(:transform AS jsonb), :width, :height,
            CAST(:bands AS jsonb), :cloud_fraction, :nodata_fraction, CAST(:metadata AS jsonb),
            ST_MakeValid(ST_GeomFromText(:wkt, 4326)))
        RETURNING id
        """
    ), {
        "path": info["path"], "sensor": info["sensor"], "acquired_at": info["acquired_at"],
        "crs": info["crs"], "transform": json.dumps(info["transform"]),
        "width": info["width"], "height": info["height"], "bands": json.dumps(info["bands"]),
        "cloud_fraction": info["cloud_fraction"], "nodata_fraction": info["nodata_fraction"],
        "metadata": json.dumps(_jsonable(info["metadata"])), "wkt": wkt,
    }).scalar_one()


INSERT_CHANGE = """
INSERT INTO land_changes (run_id, area_m2, from_class, to_class, kind, confidence,
    date_before, date_after, commune_code, geom)
VALUES (:run_id, :area_m2, :from_class, :to_class, :kind, :confidence, :date_before,
    :date_after,
    (SELECT code FROM admin_units u
     WHERE u.level = 'commune' AND u.geom IS NOT NULL AND (u.valid_to IS NULL OR u.valid_to > now())
       AND ST_Intersects(u.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
     ORDER BY u.valid_from DESC LIMIT 1),
    ST_Multi(ST_SetSRID(ST_GeomFromWKB(decode(CAST(:wkb AS text), 'hex')), {srid})))
RETURNING id
"""


def store_run(bind: Engine | Connection, result: DetectionResult, rules: RuleSet) -> dict:
    """Insert the run, its two scenes, its changes and its parcel alerts (one transaction).

    Change polygons are transformed from the image CRS into the storage CRS (pinned VN-2000
    transformation where the datum changes) and their area measured there.

    Returns
    -------
    dict
        run_id, changes, alerts (counts) and alerts_by_severity.
    """
    with transaction(bind) as conn:
        srid = storage_srid(conn)
        before_id = _insert_scene(conn, result.scene_info["before"])
        after_id = _insert_scene(conn, result.scene_info["after"])
        run_id = conn.execute(text(
            """
            INSERT INTO detection_runs (status, method, model_version, parameters,
                before_scene_id, after_scene_id, timings, stats)
            VALUES ('running', :method, :model_version, CAST(:parameters AS jsonb), :b, :a,
                CAST(:timings AS jsonb), CAST(:stats AS jsonb))
            RETURNING id
            """
        ), {
            "method": result.method, "model_version": result.model_version,
            "parameters": json.dumps(_jsonable(result.parameters)), "b": before_id,
            "a": after_id, "timings": json.dumps(result.timings),
            "stats": json.dumps(_jsonable(result.stats)),
        }).scalar_one()
        n_changes = 0
        if result.features:
            geoms = np.array([f["geometry"] for f in result.features], dtype=object)
            stored = transform_geometries(geoms, result.grid.crs.to_wkt(), srid)
            lonlat = transform_geometries(shapely.point_on_surface(geoms),
                                          result.grid.crs.to_wkt(), 4326)
            stmt = text(INSERT_CHANGE.format(srid=int(srid)))
            d_before = result.before.acquired_at.date() if result.before.acquired_at else None
            d_after = result.after.acquired_at.date() if result.after.acquired_at else None
            for f, g, pt in zip(result.features, stored, lonlat, strict=True):
                g = shapely.make_valid(g)
                polys = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
                if not polys:
                    continue
                g = shapely.MultiPolygon(polys)
                conn.execute(stmt, {
                    "run_id": run_id, "area_m2": round(float(g.area), 1),
                    "from_class": f["from_class"], "to_class": f["to_class"],
                    "kind": f["kind"], "confidence": min(max(f["confidence"], 0.0), 1.0),
                    "date_before": d_before, "date_after": d_after,
                    "lon": float(pt.x), "lat": float(pt.y),
                    "wkb": shapely.to_wkb(g, hex=True),
                })
                n_changes += 1
        alerts = create_alerts(conn, run_id, rules)
        by_sev: dict[str, int] = {}
        for a in alerts:
            by_sev[a.severity] = by_sev.get(a.severity, 0) + 1
        stats = {**_jsonable(result.stats), "stored_changes": n_changes, "alerts": len(alerts),
                 "alerts_by_severity": by_sev}
        conn.execute(text(
            "UPDATE detection_runs SET status = 'succeeded', finished_at = now(), "
            "stats = CAST(:stats AS jsonb) WHERE id = :id"
        ), {"stats": json.dumps(stats), "id": run_id})
    return {"run_id": run_id, "changes": n_changes, "alerts": len(alerts),
            "alerts_by_severity": by_sev}


def record_failed_run(bind: Engine | Connection, method: str, parameters: dict, error: str,
                      model_version: str | None = None) -> int:
    """Record a failed run (its own transaction): status 'failed' and the error sentence."""
    with transaction(bind) as conn:
        return conn.execute(text(
            """
            INSERT INTO detection_runs (status, method, model_version, parameters, finished_at,
                error)
            VALUES ('failed', :method, :model_version, CAST(:parameters AS jsonb), now(), :error)
            RETURNING id
            """
        ), {"method": method, "model_version": model_version,
            "parameters": json.dumps(_jsonable(parameters)), "error": error}).scalar_one()
