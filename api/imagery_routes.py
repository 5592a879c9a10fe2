"""Imagery of stored detection runs and the evidence of parcel alerts (issue 14).

- ``GET /imagery/{scene_id}/tiles/{z}/{x}/{y}.png?style=truecolor|falsecolor``: XYZ
  (WebMercatorQuad) 256-px PNG map tiles of a scene's COG, rendered by rio-tiler with the
  scene's recorded 2-98 % stretch and the display gamma (:mod:`gis.evidence`); transparent
  outside the scene, 204 for a tile that does not touch it. QGIS: *XYZ Tiles* with this URL.
- ``GET /imagery/runs/{run}/{before|after}/tiles/{z}/{x}/{y}.png``: the same for a run's
  before or after scene, with the run's pair stretch (:func:`gis.evidence.pair_stretch`, the
  one its alerts' chips use), so before and after compare honestly and the map matches the
  chips; ``{run}`` may be ``latest`` (the shipped QGIS project uses that).
- ``GET /imagery/runs/{run_id}``: before and after of a run side by side (two synced Leaflet
  maps, the run's alerts and changes drawn on both; local Leaflet, works offline).
- ``GET /collections/parcel-alerts/items/{id}/evidence/{before|after}.png?style=...``: the
  alert's image chip (parcel outline yellow, change polygons cyan).
- Each scene with a COG is also an OGC API - Coverages collection ``imagery-scene-{id}``
  (pygeoapi's rasterio provider; :func:`scene_coverages` adds them to the configuration when
  the app starts) served at ``/collections/imagery-scene-{id}/coverage``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from api.app_context import AppContext, RouteGroup
from api.crs import CRS84
from api.errors import ConfigError, InvalidParameterError, NotFoundError
from gis.evidence import MOMENTS, STYLES, pair_stretch, render_tile

COVERAGE_PREFIX = "imagery-scene-"
PNG = "image/png"
# tiles and chips of a stored scene only change when its run is stored again
CACHE = {"Cache-Control": "public, max-age=300"}

#: the scenes published as coverage collections: those of the latest ``:runs`` succeeded runs
#: with imagery, and those of any run with an alert still to review (new, not superseded)
PUBLISHED_SCENES_SQL = """
    WITH runs AS (
        SELECT r.id, r.before_scene_id, r.after_scene_id FROM detection_runs r
        WHERE r.status = 'succeeded'
          AND EXISTS (SELECT 1 FROM scene_cogs c WHERE c.scene_id = r.after_scene_id)
    ), latest AS (
        SELECT * FROM runs ORDER BY id DESC LIMIT :runs
    ), open_runs AS (
        SELECT * FROM runs r WHERE EXISTS (
            SELECT 1 FROM parcel_alerts a WHERE a.run_id = r.id AND a.review_status = 'new'
            AND a.superseded_at IS NULL)
    )
    SELECT before_scene_id AS scene_id FROM latest UNION SELECT after_scene_id FROM latest
    UNION SELECT before_scene_id FROM open_runs UNION SELECT after_scene_id FROM open_runs
"""

SCENES_SQL = text(f"""
    SELECT s.id, c.path, s.acquired_at, s.sensor, c.crs, c.bands,
           ST_XMin(b) AS xmin, ST_YMin(b) AS ymin, ST_XMax(b) AS xmax, ST_YMax(b) AS ymax,
           (SELECT array_agg(r.id ORDER BY r.id) FROM detection_runs r
            WHERE r.status = 'succeeded' AND s.id IN (r.before_scene_id, r.after_scene_id)) AS runs
    FROM scene_cogs c JOIN imagery_scenes s ON s.id = c.scene_id,
         LATERAL (SELECT s.footprint::box2d AS b) f
    WHERE s.id IN ({PUBLISHED_SCENES_SQL})
    ORDER BY s.id
""")


def scene_coverages(engine: Engine, latest_runs: int = 10) -> dict[str, dict]:
    """pygeoapi resources, for :func:`api.config.build_config`: one OGC API - Coverages
    collection (``imagery-scene-{scene id}``) per stored scene COG whose file is there, for
    the scenes of the latest ``latest_runs`` detection runs and of the runs with alerts still
    to review (``IOC_API_COVERAGE_RUNS``). A year of intake would otherwise list hundreds of
    scenes under /collections; every stored scene keeps its map tiles at
    ``/imagery/{scene}/tiles/...`` and its chips, published or not."""
    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass('scene_cogs')")).scalar() is None:
            raise ConfigError(
                "Cannot publish the stored imagery: table scene_cogs is missing; "
                "run `ioc db up` to migrate the database."
            )
        rows = conn.execute(SCENES_SQL, {"runs": max(0, int(latest_runs))}).all()
    resources: dict[str, dict] = {}
    for r in rows:
        if not Path(r.path).is_file() or not r.runs:
            continue
        when = r.acquired_at.date().isoformat() if r.acquired_at else "undated"
        runs = ", ".join(str(i) for i in r.runs)
        extents: dict[str, Any] = {
            "spatial": {
                "bbox": [round(float(v), 7) for v in (r.xmin, r.ymin, r.xmax, r.ymax)],
                "crs": CRS84,
            }
        }
        if r.acquired_at:
            extents["temporal"] = {"begin": r.acquired_at, "end": r.acquired_at}
        resources[f"{COVERAGE_PREFIX}{r.id}"] = {
            "type": "collection",
            "title": {
                "vi": f"Ảnh vệ tinh {when} (cảnh {r.id})",
                "en": f"Satellite scene {when} (scene {r.id})",
            },
            "description": {
                "vi": f"Ảnh {r.sensor or 'vệ tinh'} ngày {when} dùng trong lần phát hiện biến "
                f"động {runs}: kênh B02, B03, B04, B08 (COG).",
                "en": f"{r.sensor or 'Satellite'} scene of {when} read by detection run(s) "
                f"{runs}: bands B02, B03, B04, B08 (cloud-optimised GeoTIFF).",
            },
            "keywords": ["ảnh vệ tinh", "satellite imagery", "Sentinel-2", "coverage"],
            "links": [],
            "extents": extents,
            "providers": [
                {
                    "type": "coverage",
                    "name": "rasterio",
                    "data": str(r.path),
                    "options": {"DATA_ENCODING": "COG"},
                    "format": {"name": "GTiff", "mimetype": "application/tiff"},
                }
            ],
        }
    return resources


INT4_MAX = 2**31 - 1  # scene and run ids are integer columns; alert ids bigint


def _stored_scene(engine: Engine, collection_id: str) -> int | None:
    """The scene id of ``imagery-scene-{id}`` when that scene has a stored COG."""
    digits = collection_id.removeprefix(COVERAGE_PREFIX)
    if digits == collection_id or not digits.isdigit() or not 0 < int(digits) <= INT4_MAX:
        return None
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT 1 FROM scene_cogs WHERE scene_id = :id"), {"id": int(digits)}
        ).scalar()
    return int(digits) if found else None


def _scene(engine: Engine, scene_id: int):
    if not 0 < scene_id <= INT4_MAX:
        raise NotFoundError(f"No stored imagery for scene {str(scene_id)[:20]}.")
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT path, bands, stretch FROM scene_cogs WHERE scene_id = :id"),
            {"id": scene_id},
        ).one_or_none()
    if row is None or not Path(row.path).is_file():
        raise NotFoundError(f"No stored imagery for scene {scene_id}.")
    return row


RUN_COGS_SQL = """
    SELECT r.id, r.{column} AS scene_id, cb.stretch AS before_stretch,
           ca.stretch AS after_stretch
    FROM detection_runs r
    JOIN scene_cogs cb ON cb.scene_id = r.before_scene_id
    JOIN scene_cogs ca ON ca.scene_id = r.after_scene_id
    WHERE r.status = 'succeeded' {where}
    ORDER BY r.id DESC LIMIT 1
"""


def _run_scene(engine: Engine, run: str, moment: str) -> tuple[int, dict]:
    """The before/after scene id of run ``run`` (an id, or ``latest``: the latest succeeded
    run with stored imagery) and the run's pair stretch (the one its chips use)."""
    if moment not in MOMENTS:
        raise NotFoundError(f"No imagery '{moment[:20]}'; use before or after.")
    column = f"{moment}_scene_id"
    params: dict[str, int] = {}
    if run == "latest":
        where = ""
    else:
        try:
            run_id = int(run)
        except ValueError:
            raise NotFoundError(f"No stored detection run '{run[:40]}'.") from None
        if not 0 < run_id <= INT4_MAX:
            raise NotFoundError(f"No stored detection run '{run[:40]}'.")
        where, params = "AND r.id = :r", {"r": run_id}
    with engine.connect() as conn:
        row = conn.execute(
            text(RUN_COGS_SQL.format(column=column, where=where)), params
        ).one_or_none()
    if row is None:
        if run == "latest":
            raise NotFoundError("No stored detection run has imagery yet.")
        raise NotFoundError(f"No stored detection run {run_id} with imagery.")
    return int(row.scene_id), pair_stretch(row.before_stretch, row.after_stretch)


def _style(request: Request, allowed: tuple[str, ...] = ("style",)) -> str:
    for key in request.query_params:
        if key not in allowed:
            raise InvalidParameterError(f"Unknown query parameter '{key[:60]}'; allowed: style.")
    style = request.query_params.get("style", "truecolor")
    if style not in STYLES:
        raise InvalidParameterError(f"Unknown style '{style[:40]}'; use truecolor or falsecolor.")
    return style


def _run(engine: Engine, run_id: int) -> dict:
    if not 0 < run_id <= INT4_MAX:
        raise NotFoundError(f"No stored detection run {str(run_id)[:20]}.")
    with engine.connect() as conn:
        row = (
            conn.execute(
                text("""
            SELECT r.id, r.method, r.model_version, r.status,
                   r.before_scene_id, r.after_scene_id, sb.acquired_at AS before_at,
                   sa.acquired_at AS after_at,
                   ST_XMin(e) AS xmin, ST_YMin(e) AS ymin, ST_XMax(e) AS xmax, ST_YMax(e) AS ymax,
                   (SELECT count(*) FROM scene_cogs c
                    WHERE c.scene_id IN (r.before_scene_id, r.after_scene_id)) AS cogs,
                   (SELECT count(*) FROM parcel_alerts a WHERE a.run_id = r.id
                    AND a.superseded_at IS NULL) AS alerts
            FROM detection_runs r
            JOIN imagery_scenes sb ON sb.id = r.before_scene_id
            JOIN imagery_scenes sa ON sa.id = r.after_scene_id,
                 LATERAL (SELECT ST_Extent(g)::box2d AS e
                          FROM (VALUES (sb.footprint), (sa.footprint)) v(g)) x
            WHERE r.id = :id
        """),
                {"id": run_id},
            )
            .mappings()
            .one_or_none()
        )
    if row is None:
        raise NotFoundError(f"No stored detection run {run_id}.")
    if row["cogs"] < 2:
        raise NotFoundError(f"Detection run {run_id} has no stored imagery.")
    return dict(row)


PAGE = """<!DOCTYPE html>
<html lang="vi"><head><meta charset="utf-8">
<title>Ảnh trước / sau — lần phát hiện {run_id}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="https://unpkg.com/leaflet@1.3.1/dist/leaflet.css"/>
<script src="https://unpkg.com/leaflet@1.3.1/dist/leaflet.js"></script>
<style>
 body {{ margin: 0; font-family: sans-serif; }}
 header {{ padding: 6px 10px; background: #25364a; color: #fff; }}
 header a {{ color: #cde; }}
 .pair {{ display: flex; height: calc(100vh - 64px); }}
 .pane {{ flex: 1; display: flex; flex-direction: column; border-left: 2px solid #fff; }}
 .pane h2 {{ margin: 0; padding: 4px 8px; font-size: 15px; background: #eef0ea; }}
 .map {{ flex: 1; background: #222; }}
 .legend {{ font-size: 13px; }}
 .sw {{ display: inline-block; width: 14px; height: 3px; vertical-align: middle; }}
</style></head>
<body>
<header>
 <b>Lần phát hiện biến động {run_id}</b> ({method}, {model}) — {alerts} cảnh báo ·
 <label><input type="radio" name="style" value="truecolor" checked> Màu tự nhiên</label>
 <label><input type="radio" name="style" value="falsecolor"> Màu giả hồng ngoại (NIR)</label>
 · <span class="legend"><span class="sw" style="background:#ffff00"></span> thửa có cảnh báo
 <span class="sw" style="background:#00ffff"></span> vùng biến động</span>
 · <a href="{base}/collections/parcel-alerts/items?run_id={run_id}&amp;f=html">danh sách cảnh báo</a>
</header>
<div class="pair">
 <div class="pane"><h2>Trước: {before_at} (cảnh {before_id})</h2><div id="before" class="map"></div></div>
 <div class="pane"><h2>Sau: {after_at} (cảnh {after_id})</h2><div id="after" class="map"></div></div>
</div>
<script>
const BASE = {base_json}, RUN = {run_id};
const BOUNDS = [[{ymin}, {xmin}], [{ymax}, {xmax}]];
// the run's tiles: both dates with the run's one stretch, the one its alerts' chips use
function tileUrl(moment, style) {{
  return BASE + "/imagery/runs/" + RUN + "/" + moment + "/tiles/{{z}}/{{x}}/{{y}}.png?style=" + style;
}}
const maps = {{}}, layers = {{}};
for (const moment of ["before", "after"]) {{
  const m = L.map(moment, {{maxZoom: 19, minZoom: 8}});
  m.attributionControl.setPrefix("");
  layers[moment] = L.tileLayer(tileUrl(moment, "truecolor"),
      {{maxZoom: 19, maxNativeZoom: 17, bounds: BOUNDS}}).addTo(m);
  m.fitBounds(BOUNDS);
  maps[moment] = m;
}}
// keep the two maps on the same view
let syncing = false;
function follow(src, dst) {{
  src.on("move", () => {{
    if (syncing) return;
    syncing = true; dst.setView(src.getCenter(), src.getZoom(), {{animate: false}}); syncing = false;
  }});
}}
follow(maps.before, maps.after); follow(maps.after, maps.before);
document.querySelectorAll("input[name=style]").forEach(el => el.addEventListener("change", e => {{
  for (const moment of ["before", "after"]) layers[moment].setUrl(tileUrl(moment, e.target.value));
}}));
// the run's changes and alerted parcels on both maps
function overlay(collection, colour, weight) {{
  fetch(BASE + "/collections/" + collection + "/items?run_id=" + RUN + "&limit=2000&f=json")
    .then(r => r.ok ? r.json() : {{features: []}})
    .then(fc => {{
      for (const moment of ["before", "after"]) {{
        L.geoJSON(fc, {{style: {{color: colour, weight: weight, fill: false}},
          onEachFeature: (f, l) => {{
            if (collection !== "parcel-alerts") return;
            const p = f.properties;
            l.bindPopup("Cảnh báo " + f.id + ": " + (p.rule || "") + " (" + (p.severity || "") +
              ")<br><a href='" + BASE + "/collections/parcel-alerts/items/" + f.id + "?f=html'>chi tiết</a>");
          }}}}).addTo(maps[moment]);
      }}
    }});
}}
overlay("land-changes", "#00ffff", 1.5);
overlay("parcel-alerts", "#ffff00", 2.5);
</script>
</body></html>
"""


def _evidence(engine: Engine, item_id: str, moment: str, style: str) -> Path:
    try:
        alert_id = int(item_id)
    except ValueError:
        raise NotFoundError(f"No parcel alert '{item_id[:40]}'.") from None
    if not 0 < alert_id < 2**63:
        raise NotFoundError(f"No parcel alert '{item_id[:40]}'.")
    with engine.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM parcel_alerts WHERE id = :a"), {"a": alert_id}
        ).scalar()
        if not exists:
            raise NotFoundError(f"No parcel alert {alert_id}.")
        path = conn.execute(
            text(
                "SELECT path FROM alert_evidence WHERE alert_id = :a AND moment = :m AND style = :s"
            ),
            {"a": alert_id, "m": moment, "s": style},
        ).scalar()
    if path is None:
        raise NotFoundError(
            f"Parcel alert {alert_id} has no imagery evidence (its run has no stored scenes)."
        )
    if not Path(path).is_file():
        raise NotFoundError(
            f"The {moment} image of parcel alert {alert_id} is missing from the "
            "server's state folder; store its run again to remake it."
        )
    return Path(path)


def imagery_routes(ctx: AppContext) -> RouteGroup:
    """The imagery tiles, the before/after page, alert evidence and the coverage route."""
    import pygeoapi.api.coverages as coverages_api

    engine = ctx.engine

    async def tile(request: Request) -> Response:
        ctx.check_read(request)
        p = request.path_params
        style = _style(request)
        z, x, y = p["z"], p["x"], p["y"]
        if z > 24 or x >= 2**z or y >= 2**z:
            raise NotFoundError(f"Tile {z}/{x}/{y} is outside WebMercatorQuad.")
        scene_id, stretch = p.get("scene_id"), None
        if scene_id is None:  # /imagery/runs/{run}/{moment}/tiles/...: the run's pair stretch
            scene_id, stretch = await run_in_threadpool(_run_scene, engine, p["run"], p["moment"])
        scene = await run_in_threadpool(_scene, engine, scene_id)
        png = await run_in_threadpool(
            render_tile,
            scene.path,
            list(scene.bands),
            stretch or dict(scene.stretch),
            z,
            x,
            y,
            style,
        )
        if png is None:
            return Response(status_code=204, headers=CACHE)
        return Response(png, media_type=PNG, headers=CACHE)

    async def run_page(request: Request) -> Response:
        ctx.check_read(request)
        run = await run_in_threadpool(_run, engine, request.path_params["run_id"])
        base = ctx.base_url.rstrip("/")

        def day(v) -> str:
            return v.strftime("%d/%m/%Y") if v else "không rõ ngày"

        page = PAGE.format(
            run_id=run["id"],
            method=html.escape(run["method"] or ""),
            model=html.escape(run["model_version"] or ""),
            alerts=run["alerts"],
            base=html.escape(base),
            base_json=json.dumps(base),
            before_id=run["before_scene_id"],
            after_id=run["after_scene_id"],
            before_at=day(run["before_at"]),
            after_at=day(run["after_at"]),
            xmin=run["xmin"],
            ymin=run["ymin"],
            xmax=run["xmax"],
            ymax=run["ymax"],
        )
        return HTMLResponse(page)

    async def evidence(request: Request) -> Response:
        ctx.check_read(request)
        ctx.collection("parcel-alerts")
        moment = request.path_params["moment"]
        if moment not in MOMENTS:
            raise NotFoundError(f"No evidence '{moment[:20]}'; use before.png or after.png.")
        style = _style(request)
        path = await run_in_threadpool(
            _evidence, engine, request.path_params["item_id"], moment, style
        )
        return FileResponse(path, media_type=PNG, headers=CACHE)

    async def coverage(request: Request) -> Response:
        ctx.check_read(request)
        cid = request.path_params["collection_id"]
        if cid not in ctx.coverage_ids:
            stored = await run_in_threadpool(_stored_scene, engine, cid)
            if stored is not None:
                raise NotFoundError(
                    f"Scene {stored} is stored but not published as a coverage collection "
                    f"(only the scenes of the latest {ctx.settings.coverage_runs} runs and of "
                    "alerts to review are); its imagery is at "
                    f"/imagery/{stored}/tiles/{{z}}/{{x}}/{{y}}.png."
                )
            raise NotFoundError(
                f"Collection '{cid[:80]}' has no coverage; imagery collections "
                f"are named {COVERAGE_PREFIX}<scene id>."
            )
        _check_coverage_query(request.query_params)
        return await ctx.pygeoapi(request, coverages_api.get_collection_coverage, cid)

    routes = [
        Route("/imagery/{scene_id:int}/tiles/{z:int}/{x:int}/{y:int}.png", tile),
        Route("/imagery/runs/{run}/{moment}/tiles/{z:int}/{x:int}/{y:int}.png", tile),
        Route("/imagery/runs/{run_id:int}", run_page),
        Route("/collections/parcel-alerts/items/{item_id}/evidence/{moment}.png", evidence),
        Route("/collections/{collection_id}/coverage", coverage),
    ]
    return RouteGroup(routes, openapi_paths())


#: the query parameters of OGC API - Coverages that pygeoapi's coverage handler reads
COVERAGE_PARAMS = frozenset(
    {
        "bbox",
        "bbox-crs",
        "datetime",
        "subset",
        "properties",
        "scale-factor",
        "scale-axes",
        "scale-size",
        "f",
        "lang",
    }
)
#: bbox-crs values the rasterio provider understands (longitude/latitude)
COVERAGE_BBOX_CRS = frozenset(
    {
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "http://www.opengis.net/def/crs/EPSG/0/4326",
        "EPSG:4326",
    }
)


def _check_coverage_query(params) -> None:
    """400 for what pygeoapi's coverage handler would turn into a 500: an unknown parameter,
    a malformed or empty bbox, a bbox-crs it cannot read."""
    from api.params import _check_names, parse_bbox

    _check_names(params, COVERAGE_PARAMS)
    if "bbox" in params:
        minx, miny, maxx, maxy = parse_bbox(params["bbox"])
        if minx == maxx or miny == maxy:
            raise InvalidParameterError("bbox is empty (min equals max); give an area.")
    crs = params.get("bbox-crs")
    if crs is not None and crs.strip() not in COVERAGE_BBOX_CRS:
        raise InvalidParameterError(
            f"bbox-crs '{crs[:80]}' is not supported for coverages; use "
            "http://www.opengis.net/def/crs/OGC/1.3/CRS84 (longitude, latitude)."
        )


def _png(description: str) -> dict:
    return {
        "description": description,
        "content": {PNG: {"schema": {"type": "string", "format": "binary"}}},
    }


STYLE_PARAM = {
    "name": "style",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": list(STYLES), "default": "truecolor"},
    "description": "truecolor (B04/B03/B02) or falsecolor (NIR: B08/B04/B03).",
}
NOT_FOUND = {"$ref": "#/components/responses/NotFound"}
INVALID = {"$ref": "#/components/responses/InvalidParameter"}


def openapi_paths() -> dict[str, dict]:
    """OpenAPI path items of :func:`imagery_routes` (coverages are pygeoapi's own)."""

    def path_int(name: str, minimum: int = 0) -> dict:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": minimum},
        }

    return {
        "/imagery/{scene_id}/tiles/{z}/{x}/{y}.png": {
            "get": {
                "summary": "A map tile (XYZ, WebMercatorQuad) of a stored scene's imagery",
                "tags": ["imagery"],
                "operationId": "getImageryTile",
                "parameters": [
                    path_int("scene_id", 1),
                    {**path_int("z"), "schema": {"type": "integer", "minimum": 0, "maximum": 24}},
                    path_int("x"),
                    path_int("y"),
                    STYLE_PARAM,
                ],
                "responses": {
                    "200": _png("256 × 256 RGBA PNG, transparent outside the scene"),
                    "204": {"description": "The tile does not touch the scene"},
                    "400": INVALID,
                    "404": NOT_FOUND,
                },
            }
        },
        "/imagery/runs/{run}/{moment}/tiles/{z}/{x}/{y}.png": {
            "get": {
                "summary": "A map tile of a detection run's before or after scene (run id or latest)",
                "tags": ["imagery"],
                "operationId": "getImageryRunTile",
                "parameters": [
                    {
                        "name": "run",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^([0-9]+|latest)$"},
                        "description": "A run id, or latest (the latest run with stored imagery).",
                    },
                    {
                        "name": "moment",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(MOMENTS)},
                    },
                    {**path_int("z"), "schema": {"type": "integer", "minimum": 0, "maximum": 24}},
                    path_int("x"),
                    path_int("y"),
                    STYLE_PARAM,
                ],
                "responses": {
                    "200": _png("256 × 256 RGBA PNG, transparent outside the scene"),
                    "204": {"description": "The tile does not touch the scene"},
                    "400": INVALID,
                    "404": NOT_FOUND,
                },
            }
        },
        "/imagery/runs/{run_id}": {
            "get": {
                "summary": "Before and after imagery of a detection run side by side (HTML)",
                "tags": ["imagery"],
                "operationId": "getImageryRunPage",
                "parameters": [path_int("run_id", 1)],
                "responses": {
                    "200": {
                        "description": "HTML page with two synced maps",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "404": NOT_FOUND,
                },
            }
        },
        "/collections/parcel-alerts/items/{featureId}/evidence/{moment}.png": {
            "get": {
                "summary": "Before or after image chip of a parcel alert (parcel outline drawn)",
                "tags": ["parcel-alerts"],
                "operationId": "getParcelAlertEvidence",
                "parameters": [
                    {
                        "name": "featureId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                    {
                        "name": "moment",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(MOMENTS)},
                    },
                    STYLE_PARAM,
                ],
                "responses": {
                    "200": _png("384 × 384 PNG chip: parcel outline yellow, change polygons cyan"),
                    "400": INVALID,
                    "404": NOT_FOUND,
                },
            }
        },
    }
