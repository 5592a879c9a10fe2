"""Storing a detection run: scenes, run, land changes and parcel alerts in one transaction.

A run is identified by what decides its result (:func:`run_key`): the content of its two
scenes (:func:`scene_fingerprint`: a hash of the raster files' bytes, so a renamed or moved
copy is the same scene), the method, the model version and the parameters that change the
output (threshold, minimum mapping unit, opening, simplification, TTA, CVA rule, bands). Storing
a run whose key is already stored updates that run (its scenes, changes, statistics and
alerts are replaced; alerts raised again keep their id and review; a reviewed alert no longer
raised is kept and marked superseded) instead of adding a duplicate; ``force=True`` stores a
new run regardless. The alert rules are not part of the key: re-running a pair after editing
the rules updates the run's alerts.

A run that fails (bad input, or an error while storing) is recorded on its own, in a separate
transaction, as ``status='failed'`` with the error; nothing else of it is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import shapely
from sqlalchemy import Connection, Engine, text

from gis.alerts import RuleSet, create_alerts
from gis.cadastre import transaction
from gis.change.detect import DetectionResult
from gis.crs import transform_geometries
from gis.db.session import storage_srid
from gis.imagery import Scene


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


#: Parameters of :class:`gis.change.detect.DetectionConfig` that change a run's result; the
#: others (tile size, threads, Dask scheduler, GDAL cache) only change how it is computed.
KEY_PARAMETERS = (
    "threshold",
    "min_mapping_unit_m2",
    "opening",
    "simplify_px",
    "tta",
    "cva_rule",
    "bands",
)


def _file_digest(path, cache: dict) -> str:
    key = str(path)
    if key not in cache:
        with open(path, "rb") as fh:
            cache[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return cache[key]


def scene_fingerprint(scene: Scene, bands: list[str] | tuple[str, ...] | None = None) -> str:
    """sha256 over the bytes of the raster files a scene's bands (and its SCL mask) come from.

    Only content counts, not file names: a copy of the same scene elsewhere has the same
    fingerprint. ``bands``: the bands a run read (default: all of the scene's).
    """
    cache: dict[str, str] = {}
    h = hashlib.sha256()
    names = sorted(bands if bands is not None else scene.bands)
    sources = [(b, scene.bands[b]) for b in names if b in scene.bands]
    if scene.scl is not None:
        sources.append(("SCL", scene.scl))
    for name, src in sources:
        h.update(f"{name}:{src.index}:{_file_digest(src.path, cache)};".encode())
    return h.hexdigest()


def run_key(result: DetectionResult) -> tuple[str, dict]:
    """The identity of a run (sha256 hex) and what it was computed from."""
    bands = result.parameters.get("bands")
    identity = {
        "before": scene_fingerprint(result.before, bands),
        "after": scene_fingerprint(result.after, bands),
        "method": result.method,
        "model_version": result.model_version,
        **{k: result.parameters.get(k) for k in KEY_PARAMETERS},
    }
    series = result.parameters.get("series")
    if series:  # a time series (gis.change.series): every scene's content and date counts
        from gis.imagery import open_scene

        identity["series"] = {
            "scenes": [scene_fingerprint(open_scene(p), bands) for p in series["scenes"]],
            "dates": series["dates"],
            "min_persist": series["min_persist"],
        }
    blob = json.dumps(_jsonable(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest(), identity


SCENE_VALUES = """:path, :sensor, :acquired_at, :crs, CAST(:transform AS jsonb), :width, :height,
    CAST(:bands AS jsonb), :cloud_fraction, :nodata_fraction, CAST(:metadata AS jsonb),
    ST_MakeValid(ST_GeomFromText(:wkt, 4326))"""
SCENE_COLUMNS = """path, sensor, acquired_at, crs, transform, width, height, bands,
    cloud_fraction, nodata_fraction, metadata, footprint"""


def _scene_params(info: dict) -> dict:
    ring = info["footprint"]
    wkt = "POLYGON((" + ", ".join(f"{x:.8f} {y:.8f}" for x, y in ring) + "))"
    return {
        "path": info["path"],
        "sensor": info["sensor"],
        "acquired_at": info["acquired_at"],
        "crs": info["crs"],
        "transform": json.dumps(info["transform"]),
        "width": info["width"],
        "height": info["height"],
        "bands": json.dumps(info["bands"]),
        "cloud_fraction": info["cloud_fraction"],
        "nodata_fraction": info["nodata_fraction"],
        "metadata": json.dumps(_jsonable(info["metadata"])),
        "wkt": wkt,
    }


def _write_scene(conn: Connection, info: dict, scene_id: int | None = None) -> int:
    """Insert a scene, or update the row ``scene_id`` (a re-run: same content, maybe moved)."""
    params = _scene_params(info)
    if scene_id is None:
        return conn.execute(
            text(
                f"INSERT INTO imagery_scenes ({SCENE_COLUMNS}) VALUES ({SCENE_VALUES}) RETURNING id"
            ),
            params,
        ).scalar_one()
    conn.execute(
        text(f"UPDATE imagery_scenes SET ({SCENE_COLUMNS}) = ROW({SCENE_VALUES}) WHERE id = :id"),
        {**params, "id": scene_id},
    )
    return scene_id


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


def store_run(
    bind: Engine | Connection,
    result: DetectionResult,
    rules: RuleSet,
    force: bool = False,
    state_dir=None,
) -> dict:
    """Store the run, its two scenes, its changes and its parcel alerts (one transaction).

    A run with the same :func:`run_key` as a stored, succeeded run updates that run in place
    (see the module docstring) unless ``force`` is true, which stores a new run anyway.
    Change polygons are transformed from the image CRS into the storage CRS (pinned VN-2000
    transformation where the datum changes) and their area measured there.

    The scenes' COGs and the alerts' image chips are made in the same transaction
    (:func:`gis.evidence.store_run_evidence`, files under ``state_dir``, default
    ``IOC_STATE_DIR``).

    Returns
    -------
    dict
        run_id, updated (True when an earlier run was updated), changes, alerts (counts),
        alerts_by_severity, and for an update: alerts_removed (unreviewed alerts no longer
        raised) and reviewed_superseded (reviewed alerts no longer raised, kept).
    """
    key, identity = run_key(result)
    parameters = {
        **_jsonable(result.parameters),
        "before_fingerprint": identity["before"],
        "after_fingerprint": identity["after"],
    }
    with transaction(bind) as conn:
        srid = storage_srid(conn)
        # two stores of the same run at once: the second waits and then updates the first
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7))"), {"k": key})
        previous = (
            None
            if force
            else conn.execute(
                text(
                    "SELECT id, before_scene_id, after_scene_id FROM detection_runs "
                    "WHERE input_key = :k AND status = 'succeeded' ORDER BY id DESC LIMIT 1 FOR UPDATE"
                ),
                {"k": key},
            ).one_or_none()
        )
        run_values = {
            "method": result.method,
            "model_version": result.model_version,
            "parameters": json.dumps(parameters),
            "timings": json.dumps(result.timings),
            "stats": json.dumps(_jsonable(result.stats)),
            "key": key,
        }
        if previous is None:
            before_id = _write_scene(conn, result.scene_info["before"])
            after_id = _write_scene(conn, result.scene_info["after"])
            run_id = conn.execute(
                text(
                    """
                INSERT INTO detection_runs (status, method, model_version, parameters,
                    before_scene_id, after_scene_id, timings, stats, input_key)
                VALUES ('running', :method, :model_version, CAST(:parameters AS jsonb), :b, :a,
                    CAST(:timings AS jsonb), CAST(:stats AS jsonb), :key)
                RETURNING id
                """
                ),
                {**run_values, "b": before_id, "a": after_id},
            ).scalar_one()
        else:
            run_id = previous.id
            _write_scene(conn, result.scene_info["before"], previous.before_scene_id)
            _write_scene(conn, result.scene_info["after"], previous.after_scene_id)
            conn.execute(
                text(
                    """
                UPDATE detection_runs SET method = :method, model_version = :model_version,
                    parameters = CAST(:parameters AS jsonb), timings = CAST(:timings AS jsonb),
                    stats = CAST(:stats AS jsonb), updated_at = now()
                WHERE id = :id
                """
                ),
                {**run_values, "id": run_id},
            )
            conn.execute(text("DELETE FROM land_changes WHERE run_id = :r"), {"r": run_id})
        n_changes = _insert_changes(conn, run_id, result, srid)
        update = create_alerts(conn, run_id, rules)
        # issue 14: scene COGs and alert evidence chips (gis.evidence), same transaction
        from gis.evidence import store_run_evidence

        evidence = store_run_evidence(conn, run_id, result, state_dir)
        by_sev: dict[str, int] = {}
        for a in update.alerts:
            by_sev[a.severity] = by_sev.get(a.severity, 0) + 1
        stats = {
            **_jsonable(result.stats),
            "stored_changes": n_changes,
            "alerts": len(update.alerts),
            "alerts_by_severity": by_sev,
        }
        if previous is not None:
            stats.update(
                alerts_removed=update.removed, reviewed_superseded=update.superseded_reviewed
            )
        conn.execute(
            text(
                "UPDATE detection_runs SET status = 'succeeded', finished_at = now(), "
                "stats = CAST(:stats AS jsonb) WHERE id = :id"
            ),
            {"stats": json.dumps(stats), "id": run_id},
        )
    out = {
        "run_id": run_id,
        "updated": previous is not None,
        "changes": n_changes,
        "alerts": len(update.alerts),
        "alerts_by_severity": by_sev,
        "evidence": evidence,
    }
    if previous is not None:
        out.update(alerts_removed=update.removed, reviewed_superseded=update.superseded_reviewed)
    return out


def _insert_changes(conn: Connection, run_id: int, result: DetectionResult, srid: int) -> int:
    if not result.features:
        return 0
    n_changes = 0
    geoms = np.array([f["geometry"] for f in result.features], dtype=object)
    stored = transform_geometries(geoms, result.grid.crs.to_wkt(), srid)
    lonlat = transform_geometries(shapely.point_on_surface(geoms), result.grid.crs.to_wkt(), 4326)
    stmt = text(INSERT_CHANGE.format(srid=int(srid)))
    d_before = result.before.acquired_at.date() if result.before.acquired_at else None
    d_after = result.after.acquired_at.date() if result.after.acquired_at else None
    for f, g, pt in zip(result.features, stored, lonlat, strict=True):
        g = shapely.make_valid(g)
        polys = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
        if not polys:
            continue
        g = shapely.MultiPolygon(polys)
        conn.execute(
            stmt,
            {
                "run_id": run_id,
                "area_m2": round(float(g.area), 1),
                "from_class": f["from_class"],
                "to_class": f["to_class"],
                "kind": f["kind"],
                "confidence": min(max(f["confidence"], 0.0), 1.0),
                "date_before": d_before,
                "date_after": d_after,
                "lon": float(pt.x),
                "lat": float(pt.y),
                "wkb": shapely.to_wkb(g, hex=True),
            },
        )
        n_changes += 1
    return n_changes


def record_failed_run(
    bind: Engine | Connection,
    method: str,
    parameters: dict,
    error: str,
    model_version: str | None = None,
) -> int:
    """Record a failed run (its own transaction): status 'failed' and the error sentence."""
    with transaction(bind) as conn:
        return conn.execute(
            text(
                """
            INSERT INTO detection_runs (status, method, model_version, parameters, finished_at,
                error)
            VALUES ('failed', :method, :model_version, CAST(:parameters AS jsonb), now(), :error)
            RETURNING id
            """
            ),
            {
                "method": method,
                "model_version": model_version,
                "parameters": json.dumps(_jsonable(parameters)),
                "error": error,
            },
        ).scalar_one()
