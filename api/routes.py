"""Every route of the served app, by group, and the list that says which groups are served.

A route group is a factory ``def routes(ctx: AppContext) -> RouteGroup | list[BaseRoute]``
(:mod:`api.app_context`): it gets the app's shared state (settings, engine, tokens, the feature
service, pygeoapi's API object) and returns Starlette routes, optionally with the OpenAPI path
items that describe them. **To add routes** (service endpoints, a new resource type), write
the factory in a module of its own and append it to :data:`ROUTE_GROUPS` below, or pass it to
:func:`api.app.create_app` as ``extra_routes=[...]``. Handlers raise :mod:`api.errors`
exceptions; the app answers them (one status table, OGC exception body). A new *collection*
needs no route: add it to :mod:`api.collections`.

Groups served today:

- :func:`ogc_routes` -- OGC API Features/Tiles/Common: the landing page, ``/openapi``,
  ``/conformance``, collections, queryables, sortables, schema, items and item (GeoJSON built
  in PostGIS and streamed, keyset ``rel=next`` links, strict parameters), tiles (``ST_AsMVT``);
  HTML pages are pygeoapi's, rendered after our validation;
- :func:`process_routes` -- OGC API Processes and jobs (pygeoapi's handlers; execution and job
  deletion need a token);
- :func:`api.writes.write_routes` -- Features Part 4 review writes (PATCH/PUT on items of
  writable collections) and the 405 answers for what is not writable;
- :func:`api.digest.digest_routes` -- ``GET /digest/{date}``, ``POST /digest/feedback``;
- :func:`api.health.ops_routes` -- ``/healthz``, ``/readyz`` (JSON, 503 when not ready) and
  ``/metrics`` (Prometheus); no token.
- :func:`api.imagery_routes.imagery_routes` -- ``/imagery/{scene}/tiles/{z}/{x}/{y}.png``
  (raster map tiles of stored scenes), ``/imagery/runs/{run}`` (before/after side by side),
  ``/collections/parcel-alerts/items/{id}/evidence/{before|after}.png`` (alert chips) and
  ``/collections/{imagery-scene-N}/coverage`` (OGC API - Coverages, pygeoapi's handler);
- :func:`api.service_routes.service_routes` -- ``/service/runs`` (the recorded runs of the
  scheduled jobs of ``ioc run``), ``/service/digests`` (the stored daily digests).
- :func:`api.report_routes.report_routes` -- land reports (``/collections/parcel-alerts/items/{id}/report``,
  ``/reports/communes/{code}``, html or pdf) and the officers' review page ``/review/alerts``.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from api.app_context import AppContext, RouteFactory, RouteGroup
from api.collections import item_links
from api.crs import CRS84, crs_uri
from api.digest import digest_routes
from api.errors import InvalidParameterError, NotFoundError, public_message
from api.health import ops_routes
from api.imagery_routes import imagery_routes
from api.params import (
    FeatureQuery,
    encode_cursor,
    output_format,
    parse_int,
    parse_item_query,
    parse_items_query,
)
from api.processes import check_execution, check_job_deletion
from api.report_routes import report_routes
from api.service import Page
from api.service_routes import service_routes
from api.streaming import iter_collection, iter_streamed
from api.writes import write_routes

GEOJSON = "application/geo+json"
MVT = "application/vnd.mapbox-vector-tile"
# pages larger than this are streamed from PostgreSQL row by row (single-row mode); smaller ones
# are read in one round trip, which is faster for them
STREAM_ABOVE = 2000

EXTRA_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/sortables",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
]


def passthrough(ctx: AppContext, fn, *names: str, check: bool = True):
    """An endpoint running pygeoapi's handler ``fn`` with the named path parameters (a
    collection id is checked first: unknown ones are our 404)."""

    async def endpoint(request: Request) -> Response:
        ctx.check_read(request)
        if (
            "collection_id" in names
            and request.path_params["collection_id"] not in ctx.coverage_ids
        ):
            ctx.collection(request.path_params["collection_id"])
        args = [request.path_params[n] for n in names]
        return await ctx.pygeoapi(request, fn, *args, check=check)

    return endpoint


# -- OGC API Features / Tiles / Common ---------------------------------------------------------
class FeatureRoutes:
    """Handlers of the feature, sortables, tile and conformance routes."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def _links(
        self, request: Request, collection_id: str, q: FeatureQuery, page: Page
    ) -> list[dict]:
        base_url = self.ctx.base_url
        uri = f"{base_url}/collections/{collection_id}/items"
        keep = [
            (k, v)
            for k, v in request.query_params.multi_items()
            if k not in ("offset", "cursor", "f")
        ]
        keep_qs = urllib.parse.urlencode(keep)
        self_qs = urllib.parse.urlencode(list(request.query_params.multi_items()))
        links = [
            {
                "rel": "self",
                "type": GEOJSON,
                "title": "This document",
                "href": f"{uri}?{self_qs}" if self_qs else uri,
            },
            {
                "rel": "alternate",
                "type": "text/html",
                "title": "This document as HTML",
                "href": f"{uri}?{urllib.parse.urlencode(keep + [('f', 'html')])}",
            },
            {
                "rel": "collection",
                "type": "application/json",
                "title": "The collection",
                "href": f"{base_url}/collections/{collection_id}",
            },
        ]
        sep = "&" if keep_qs else ""
        if page.has_more:
            next_offset = q.offset + page.number_returned
            if q.keyset and page.last_id is not None:
                token = encode_cursor(next_offset, page.last_id, q.descending)
                href = f"{uri}?{keep_qs}{sep}cursor={token}"
            else:
                href = f"{uri}?{keep_qs}{sep}offset={next_offset}"
            links.append({"rel": "next", "type": GEOJSON, "title": "Next page", "href": href})
        if q.offset > 0:
            prev_offset = max(0, q.offset - q.limit)
            links.append(
                {
                    "rel": "prev",
                    "type": GEOJSON,
                    "title": "Previous page",
                    "href": f"{uri}?{keep_qs}{sep}offset={prev_offset}",
                }
            )
        return links

    def _crs_header(self, info, q: FeatureQuery) -> dict:
        if not info.spec.geom_column:
            return {}
        uri = CRS84 if (q.out_srid == 4326 and not q.out_flip) else crs_uri(q.out_srid)
        return {"Content-Crs": f"<{uri}>"}

    def _with_links(self, feature: str, collection_id: str, item_id: str) -> str:
        base = f"{self.ctx.base_url}/collections/{collection_id}"
        links = [
            {
                "rel": "self",
                "type": GEOJSON,
                "title": "This document",
                "href": f"{base}/items/{urllib.parse.quote(item_id)}",
            },
            {
                "rel": "collection",
                "type": "application/json",
                "title": "The collection",
                "href": base,
            },
        ]
        spec = self.ctx.collection(collection_id).spec
        if spec.item_links or spec.property_links:
            props = json.loads(feature).get("properties") or {}
            links += item_links(spec, self.ctx.base_url, item_id, props)
        return feature[:-1] + ',"links":' + json.dumps(links, ensure_ascii=False) + "}"

    async def items(self, request: Request) -> Response:
        ctx = self.ctx
        collection_id = request.path_params["collection_id"]
        ctx.check_read(request)
        info = ctx.collection(collection_id)
        params = request.query_params
        fmt = output_format(params, request.headers.get("accept", ""))
        q = parse_items_query(info, params, ctx.settings)  # validated before any format
        if fmt == "html":
            import pygeoapi.api.itemtypes as itemtypes_api

            return await ctx.pygeoapi(
                request, itemtypes_api.get_collection_items, collection_id, check=False
            )
        headers = self._crs_header(info, q)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        service = ctx.service
        if q.limit > STREAM_ABOVE:
            # big pages: count first, then write features as PostgreSQL sends them
            matched = await run_in_threadpool(service.matched, collection_id, q)

            def tail_of(returned: int, has_more: bool, last_id: Any) -> dict:
                page = Page([], returned, matched, has_more, last_id)
                tail: dict[str, Any] = {"numberReturned": returned}
                if matched is not None:
                    tail["numberMatched"] = matched
                tail["timeStamp"] = stamp
                tail["links"] = self._links(request, collection_id, q, page)
                return tail

            rows = service.stream(collection_id, q)
            return StreamingResponse(
                iter_streamed(rows, q.limit, {"type": "FeatureCollection"}, tail_of),
                media_type=GEOJSON,
                headers=headers,
            )
        page = await run_in_threadpool(service.page, collection_id, q)
        tail: dict[str, Any] = {"numberReturned": page.number_returned}
        if page.number_matched is not None:
            tail["numberMatched"] = page.number_matched
        tail["timeStamp"] = stamp
        tail["links"] = self._links(request, collection_id, q, page)
        return StreamingResponse(
            iter_collection(page, {"type": "FeatureCollection"}, tail),
            media_type=GEOJSON,
            headers=headers,
        )

    async def item(self, request: Request) -> Response:
        ctx = self.ctx
        collection_id = request.path_params["collection_id"]
        item_id = request.path_params["item_id"]
        ctx.check_read(request)
        info = ctx.collection(collection_id)
        q = parse_item_query(request.query_params)
        if output_format(request.query_params, request.headers.get("accept", "")) == "html":
            import pygeoapi.api.itemtypes as itemtypes_api

            return await ctx.pygeoapi(
                request, itemtypes_api.get_collection_item, collection_id, item_id, check=False
            )
        feature = await run_in_threadpool(ctx.service.item, collection_id, item_id, q)
        return Response(
            self._with_links(feature, collection_id, item_id),
            media_type=GEOJSON,
            headers=self._crs_header(info, q),
        )

    async def sortables(self, request: Request) -> Response:
        """Features Part 5: the properties ``sortby`` accepts, as a JSON Schema."""
        ctx = self.ctx
        collection_id = request.path_params["collection_id"]
        ctx.check_read(request)
        info = ctx.collection(collection_id)
        for key in request.query_params:
            if key not in ("f", "lang"):
                raise InvalidParameterError(
                    f"Unknown query parameter '{key[:60]}'; allowed: f, lang."
                )
        f = (request.query_params.get("f") or "json").lower()
        if f not in ("json", "schema+json"):
            raise InvalidParameterError("sortables are served as f=json only.")
        properties = {}
        for name in info.sortables:
            type_, fmt = info.json_type(name)
            properties[name] = {"title": name, "type": type_} | ({"format": fmt} if fmt else {})
        uri = f"{ctx.base_url}/collections/{collection_id}/sortables"
        doc = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": uri,
            "type": "object",
            "title": info.spec.title_en,
            "properties": properties,
            "additionalProperties": False,
            "links": [
                {"rel": "self", "type": "application/schema+json", "href": uri},
                {
                    "rel": "collection",
                    "type": "application/json",
                    "href": f"{ctx.base_url}/collections/{collection_id}",
                },
            ],
        }
        return JSONResponse(doc, media_type="application/schema+json")

    async def tile(self, request: Request) -> Response:
        ctx = self.ctx
        ctx.check_read(request)
        collection_id = request.path_params["collection_id"]
        info = ctx.collection(collection_id)
        if not info.spec.tiles:
            raise NotFoundError(f"Collection {collection_id} has no vector tiles.")
        if request.path_params["tms"] != "WebMercatorQuad":
            raise NotFoundError("Only the WebMercatorQuad tile matrix set is served.")
        for key in request.query_params:
            if key not in ("f",):
                raise InvalidParameterError(f"Unknown query parameter '{key[:60]}' for a tile.")
        f = request.query_params.get("f", "mvt").lower()
        if f not in ("mvt", "pbf"):
            raise InvalidParameterError("Tiles are served as f=mvt only.")
        z = parse_int(request.path_params["z"], "tileMatrix", 0)
        y = parse_int(request.path_params["y"], "tileRow", 0)
        x = parse_int(request.path_params["x"], "tileCol", 0)
        if z > 24 or x >= 2**z or y >= 2**z:
            raise NotFoundError(f"Tile {z}/{y}/{x} is outside WebMercatorQuad.")
        data = await run_in_threadpool(ctx.service.tile, collection_id, z, x, y)
        if not data:
            return Response(status_code=204, headers={"Content-Type": MVT})
        return Response(data, media_type=MVT)

    async def conformance(self, request: Request) -> Response:
        import pygeoapi.api as core_api

        self.ctx.check_read(request)
        response = await self.ctx.pygeoapi(request, core_api.conformance)
        if response.status_code == 200 and response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            doc = json.loads(response.body)
            doc["conformsTo"] = sorted(set(doc["conformsTo"]) | set(EXTRA_CONFORMANCE))
            return JSONResponse(doc)
        return response


def ogc_routes(ctx: AppContext) -> RouteGroup:
    """OGC API Common/Features/Tiles routes (see the module docstring)."""
    import pygeoapi.api as core_api
    import pygeoapi.api.itemtypes as itemtypes_api
    import pygeoapi.api.tiles as tiles_api

    h = FeatureRoutes(ctx)
    cid = "{collection_id}"
    routes: list[BaseRoute] = [
        Route("/", passthrough(ctx, core_api.landing_page)),
        Route("/openapi", passthrough(ctx, core_api.openapi_)),
        Route("/conformance", h.conformance),
        Route("/TileMatrixSets", passthrough(ctx, tiles_api.tilematrixsets)),
        Route(
            "/TileMatrixSets/{tileMatrixSetId}",
            passthrough(ctx, tiles_api.tilematrixset, "tileMatrixSetId"),
        ),
        Route("/collections", passthrough(ctx, core_api.describe_collections)),
        Route(
            f"/collections/{cid}", passthrough(ctx, core_api.describe_collections, "collection_id")
        ),
        Route(
            f"/collections/{cid}/queryables",
            passthrough(ctx, itemtypes_api.get_collection_queryables, "collection_id"),
        ),
        Route(f"/collections/{cid}/sortables", h.sortables),
        Route(
            f"/collections/{cid}/schema",
            passthrough(ctx, core_api.get_collection_schema, "collection_id"),
        ),
        Route(f"/collections/{cid}/items", h.items, methods=["GET"]),
        Route(f"/collections/{cid}/items/{{item_id}}", h.item, methods=["GET"]),
        Route(
            f"/collections/{cid}/tiles",
            passthrough(ctx, tiles_api.get_collection_tiles, "collection_id"),
        ),
        Route(
            f"/collections/{cid}/tiles/{{tileMatrixSetId}}",
            passthrough(
                ctx,
                tiles_api.get_collection_tiles_metadata,
                "collection_id",
                "tileMatrixSetId",
                check=False,
            ),
        ),
        Route(
            f"/collections/{cid}/tiles/{{tileMatrixSetId}}/metadata",
            passthrough(
                ctx,
                tiles_api.get_collection_tiles_metadata,
                "collection_id",
                "tileMatrixSetId",
                check=False,
            ),
        ),
        Route(f"/collections/{cid}/tiles/{{tms}}/{{z}}/{{y}}/{{x}}", h.tile),
    ]
    return RouteGroup(routes)


# -- OGC API Processes -------------------------------------------------------------------------
def process_routes(ctx: AppContext) -> RouteGroup:
    """Processes and jobs: pygeoapi's handlers; execution and job deletion need a token."""
    import pygeoapi.api.processes as processes_api

    async def execute(request: Request) -> Response:
        # 401 no token, 404 unknown process, 403 wrong role, 400 invalid request or inputs:
        # all before pygeoapi creates a job (api.processes)
        principal = ctx.authenticate(request)
        process_id = request.path_params["process_id"]
        body = await request.body()
        await run_in_threadpool(check_execution, ctx.api.manager, process_id, principal, body)
        return await ctx.pygeoapi(request, processes_api.execute_process, process_id)

    async def jobs(request: Request) -> Response:
        job_id = request.path_params.get("job_id")
        if request.method == "DELETE":
            principal = ctx.authenticate(request)
            await run_in_threadpool(check_job_deletion, ctx.api.manager, job_id, principal)
            return await ctx.pygeoapi(request, processes_api.delete_job, job_id)
        ctx.check_read(request)
        return public_job_messages(await ctx.pygeoapi(request, processes_api.get_jobs, job_id))

    routes: list[BaseRoute] = [
        Route("/processes", passthrough(ctx, processes_api.describe_processes)),
        Route(
            "/processes/{process_id}",
            passthrough(ctx, processes_api.describe_processes, "process_id"),
        ),
        Route("/processes/{process_id}/execution", execute, methods=["POST"]),
        Route("/jobs", jobs),
        Route("/jobs/{job_id}", jobs, methods=["GET", "DELETE"]),
        Route("/jobs/{job_id}/results", passthrough(ctx, processes_api.get_job_result, "job_id")),
    ]
    return RouteGroup(routes)


def public_job_messages(response: Response) -> Response:
    """A job's (or job list's) status ``message`` cleaned of server paths: a failed job's
    message is the text of whatever error stopped it."""
    if response.status_code != 200 or "json" not in response.headers.get("content-type", ""):
        return response
    try:
        doc = json.loads(response.body)
    except ValueError:
        return response
    jobs = doc.get("jobs", [doc]) if isinstance(doc, dict) else []
    for job in jobs:
        if isinstance(job, dict) and isinstance(job.get("message"), str):
            job["message"] = public_message(job["message"])
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(json.dumps(doc, ensure_ascii=False), status_code=200, headers=headers)


#: The route groups every app serves, in order (append yours here).
ROUTE_GROUPS: list[RouteFactory] = [
    ogc_routes,
    process_routes,
    write_routes,
    digest_routes,
    ops_routes,
    service_routes,
    report_routes,
    imagery_routes,
]


def build_routes(
    ctx: AppContext, extra: list[RouteFactory] | tuple = ()
) -> tuple[list[BaseRoute], dict[str, dict]]:
    """(routes, OpenAPI paths) of :data:`ROUTE_GROUPS` plus ``extra`` factories."""
    routes: list[BaseRoute] = []
    paths: dict[str, dict] = {}
    for factory in [*ROUTE_GROUPS, *extra]:
        group = factory(ctx)
        if not isinstance(group, RouteGroup):
            group = RouteGroup(list(group))
        routes.extend(group.routes)
        paths.update(group.openapi_paths)
    return routes, paths
