"""The served ASGI app: pygeoapi (its API object and handlers) plus our routes, built by a
factory (titiler style) rather than module-level decorators.

Routes served by us (fast path and conformance fixes):

- ``GET /collections/{id}/items`` and ``/items/{item}`` as ``application/geo+json`` from
  :mod:`api.provider` (GeoJSON built in PostGIS, keyset ``rel=next`` links, cheap
  ``numberMatched``, strict parameter validation: unknown or invalid → 400 OGC exception);
- ``GET /collections/{id}/tiles/WebMercatorQuad/{z}/{y}/{x}`` (ST_AsMVT);
- ``GET /conformance`` (adds CQL2 ``filter``/``features-filter`` and the other classes served);
- review writes (Features Part 4 ``PUT``/``PATCH`` on parcel alerts and articles), process
  execution and job deletion, all behind tokens; ``POST /digest/feedback``; ``GET /digest/{date}``.

Everything else (landing page, collections, queryables, schema, tile metadata, OpenAPI,
processes, jobs, HTML) is pygeoapi's own handlers running on the same API object.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import psycopg
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from api.auth import TokenStore
from api.collections import BY_ID
from api.config import build_config, collect_table_infos
from api.cql import parse_filter
from api.errors import (
    ApiError,
    AuthenticationError,
    InvalidParameterError,
    NotFoundError,
    status_of,
)
from api.provider import (
    CRS84,
    FeatureQuery,
    Page,
    crs_uri,
    decode_cursor,
    encode_cursor,
    get_service,
    iter_collection,
    iter_streamed,
    parse_crs,
    parse_datetime,
)
from api.review import as_int_id, correct_article_label, review_alert
from api.settings import ApiSettings

LOGGER = logging.getLogger(__name__)

GEOJSON = "application/geo+json"
MVT = "application/vnd.mapbox-vector-tile"

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
ITEMS_PARAMS = {
    "f", "lang", "limit", "offset", "cursor", "bbox", "bbox-crs", "crs", "datetime", "sortby",
    "properties", "skipGeometry", "filter", "filter-lang", "filter-crs",
}
ITEM_PARAMS = {"f", "lang", "crs"}
# pages larger than this are streamed from PostgreSQL row by row (single-row mode); smaller ones
# are read in one round trip, which is faster for them
STREAM_ABOVE = 2000


def ogc_error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse({"code": code, "type": code, "description": description}, status_code=status)


def error_response(exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        response = ogc_error(status_of(exc), exc.code, str(exc))
        if isinstance(exc, AuthenticationError):
            response.headers["WWW-Authenticate"] = 'Bearer realm="ioc-monitor"'
        return response
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return ogc_error(503, "ServiceUnavailable", "The query took too long; narrow it with bbox, datetime or filter.")
    if isinstance(exc, psycopg.errors.DataError | psycopg.errors.UndefinedFunction):
        return ogc_error(
            400, "InvalidParameterValue",
            "The filter compares a property with a value of the wrong type or uses an "
            "operator the property does not support.",
        )
    if isinstance(exc, psycopg.errors.InternalError_ | psycopg.errors.ExternalRoutineException):
        # every statement is ours: PostGIS refusing a value means the request's coordinates or
        # geometry (bbox, filter literal) are outside what the CRS or GeoJSON allows
        return ogc_error(
            400, "InvalidParameterValue",
            "The request's coordinates or geometry cannot be used (outside the CRS's area or "
            "not valid GeoJSON).",
        )
    if isinstance(exc, psycopg.OperationalError):
        LOGGER.error("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
        return ogc_error(503, "ServiceUnavailable", "The database is not reachable; try again later.")
    LOGGER.exception("unhandled error")
    return ogc_error(500, "ServerError", "Internal server error.")


def _wants_html(request: Request) -> bool:
    """f=html, or a browser's Accept header (text/html before any JSON type)."""
    f = request.query_params.get("f")
    if f is not None:
        return f.lower() == "html"
    accept = request.headers.get("accept", "").lower()
    if "text/html" not in accept:
        return False
    json_at = accept.find("json")
    return json_at < 0 or accept.find("text/html") < json_at


def _int(value: str, name: str, minimum: int, maximum: int = 2**53) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidParameterError(f"{name} must be an integer, got '{value[:40]}'.") from None
    if number < minimum:
        raise InvalidParameterError(f"{name} must be at least {minimum}, got {number}.")
    if number > maximum:
        raise InvalidParameterError(f"{name} must be at most {maximum}.")
    return number


def parse_bbox(value: str) -> list[float]:
    parts = value.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameterError("bbox must have 4 numbers (minx,miny,maxx,maxy) or 6 with heights.")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameterError(f"bbox values must be numbers, got '{value[:80]}'.") from None
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidParameterError("bbox values must be finite numbers.")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if numbers[1] > numbers[3]:
        raise InvalidParameterError("bbox miny is greater than maxy.")
    if numbers[0] > numbers[2]:
        raise InvalidParameterError("bbox minx is greater than maxx (antimeridian boxes are not supported).")
    return numbers


class OGCRoutes:
    """Route factory: pygeoapi's API object plus our fast and write routes.

    Parameters
    ----------
    config, openapi
        The pygeoapi configuration and OpenAPI document.
    settings
        API settings (limits, tokens, read protection).
    database_url
        libpq URI the provider and the writes use.
    engine
        SQLAlchemy Engine for writes and the digest.
    """

    def __init__(self, config: dict, openapi: dict, settings: ApiSettings, database_url: str,
                 engine: Engine, tokens: TokenStore) -> None:
        from pygeoapi.api import API

        self.config = config
        self.settings = settings
        self.engine = engine
        self.tokens = tokens
        self.api = API(config, openapi)
        self.base_url = settings.public_url()
        self.service = get_service(
            database_url,
            pool_size=settings.pool_size,
            statement_timeout_ms=settings.statement_timeout_ms,
            exact_count_limit=settings.exact_count_limit,
        )
        self.collections = {k for k, v in config["resources"].items() if v["type"] == "collection"}

    # -- pygeoapi adapter -----------------------------------------------------------------
    async def pygeoapi(self, request: Request, fn: Callable, *args, check: bool = True) -> Response:
        from pygeoapi.api import APIRequest, apply_gzip

        api_request = await APIRequest.from_starlette(request, self.api.locales)
        if check and not api_request.is_valid():
            headers, status, content = self.api.get_format_exception(api_request)
        else:
            loop = asyncio.get_running_loop()

            def call():
                asyncio.set_event_loop(loop)
                return fn(self.api, api_request, *args)

            headers, status, content = await loop.run_in_executor(None, call)
            if status != HTTPStatus.NO_CONTENT:
                content = apply_gzip(headers, content)
        if headers.get("Content-Type") == "text/html":
            response: Response = HTMLResponse(content=content, status_code=status)
        else:
            response = Response(content, status_code=status)
        response.headers.update(headers)
        return response

    def require_token(self, request: Request) -> str:
        return self.tokens.identify(request.headers)

    def check_read(self, request: Request) -> None:
        if self.settings.protect_reads:
            self.require_token(request)

    def _collection(self, collection_id: str) -> None:
        if collection_id not in self.collections:
            raise NotFoundError(f"No collection '{collection_id[:80]}'; see /collections.")

    # -- features ---------------------------------------------------------------------------
    def parse_items_query(self, collection_id: str, params) -> FeatureQuery:
        info = self.service.collection(collection_id).info
        queryables = set(info.properties)
        for key in params:
            if key not in ITEMS_PARAMS and key not in queryables:
                known = ", ".join(sorted(ITEMS_PARAMS | queryables))
                raise InvalidParameterError(f"Unknown query parameter '{key[:60]}'; allowed: {known}.")
        for key in params:
            if len(params.getlist(key)) > 1:
                raise InvalidParameterError(f"Query parameter '{key[:60]}' is given more than once.")
        limits = self.config["resources"][collection_id].get("limits", {})
        q = FeatureQuery()
        q.limit = min(
            _int(params["limit"], "limit", 1) if "limit" in params else limits.get("default_items", 100),
            limits.get("max_items", self.settings.max_items),
        )
        if "offset" in params:
            q.offset = _int(params["offset"], "offset", 0)
        if "cursor" in params:
            q.offset, q.after, _ = decode_cursor(params["cursor"])
        if "bbox" in params:
            q.bbox = parse_bbox(params["bbox"])
            _, q.bbox_srid, q.bbox_flip = parse_crs(params.get("bbox-crs"), "bbox-crs")
            if q.bbox_srid == 4326:
                lons = q.bbox[1::2] if q.bbox_flip else q.bbox[0::2]
                lats = q.bbox[0::2] if q.bbox_flip else q.bbox[1::2]
                if any(abs(v) > 180 for v in lons) or any(abs(v) > 90 for v in lats):
                    raise InvalidParameterError("bbox is outside -180..180 longitude / -90..90 latitude.")
        elif "bbox-crs" in params:
            raise InvalidParameterError("bbox-crs is given without bbox.")
        if "crs" in params:
            _, q.out_srid, q.out_flip = parse_crs(params["crs"])
        if "datetime" in params:
            if not info.spec.time_column:
                raise InvalidParameterError(f"Collection {collection_id} has no time property for datetime.")
            q.datetime_ = parse_datetime(params["datetime"])
        for key in params:
            if key in queryables and key not in ITEMS_PARAMS:
                q.equals[key] = params[key]
        if "sortby" in params:
            for term in params["sortby"].split(","):
                term = term.strip()
                asc = not term.startswith("-")
                name = term.lstrip("+- ")
                if name not in queryables and name != info.spec.id_column:
                    raise InvalidParameterError(f"sortby names an unknown property '{name[:60]}'.")
                if info.columns.get(name, "") in ("jsonb", "json"):
                    raise InvalidParameterError(f"sortby cannot sort on the object property '{name}'.")
                q.sortby.append((name, asc))
        if "properties" in params:
            names = [p.strip() for p in params["properties"].split(",") if p.strip()]
            unknown = [n for n in names if n not in queryables]
            if unknown:
                raise InvalidParameterError(f"properties names unknown properties: {', '.join(unknown)[:120]}.")
            q.properties = names
        if "skipGeometry" in params:
            value = params["skipGeometry"].lower()
            if value not in ("true", "false"):
                raise InvalidParameterError("skipGeometry must be true or false.")
            q.skip_geometry = value == "true"
        _, q.filter_srid, q.filter_flip = parse_crs(params.get("filter-crs"), "filter-crs")
        if "filter" in params:
            q.filter_ast = parse_filter(params["filter"], None, params.get("filter-lang"))
        elif "filter-lang" in params:
            parse_filter(None, None, params.get("filter-lang"))
        return q

    def _links(self, request: Request, collection_id: str, q: FeatureQuery, page) -> list[dict]:
        uri = f"{self.base_url}/collections/{collection_id}/items"
        keep = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "cursor", "f")]
        keep_qs = urllib.parse.urlencode(keep)
        self_qs = urllib.parse.urlencode(list(request.query_params.multi_items()))
        links = [
            {"rel": "self", "type": GEOJSON, "title": "This document", "href": f"{uri}?{self_qs}" if self_qs else uri},
            {"rel": "alternate", "type": "text/html", "title": "This document as HTML",
             "href": f"{uri}?{urllib.parse.urlencode(keep + [('f', 'html')])}"},
            {"rel": "collection", "type": "application/json", "title": "The collection",
             "href": f"{self.base_url}/collections/{collection_id}"},
        ]
        sep = "&" if keep_qs else ""
        if page.has_more:
            next_offset = q.offset + page.number_returned
            if q.keyset and page.last_id is not None:
                desc = bool(q.sortby) and not q.sortby[0][1]
                token = encode_cursor(next_offset, page.last_id, desc)
                href = f"{uri}?{keep_qs}{sep}cursor={token}"
            else:
                href = f"{uri}?{keep_qs}{sep}offset={next_offset}"
            links.append({"rel": "next", "type": GEOJSON, "title": "Next page", "href": href})
        if q.offset > 0:
            prev_offset = max(0, q.offset - q.limit)
            links.append({"rel": "prev", "type": GEOJSON, "title": "Previous page",
                          "href": f"{uri}?{keep_qs}{sep}offset={prev_offset}"})
        return links

    async def items(self, request: Request) -> Response:
        collection_id = request.path_params["collection_id"]
        self.check_read(request)
        self._collection(collection_id)
        if request.method == "POST":
            self.require_token(request)
            raise ApiError("Creating features is not supported; only review fields can be changed (PATCH/PUT on an item).")
        f = (request.query_params.get("f") or "").lower()
        if f in ("html", "jsonld") or (not f and _wants_html(request)):
            q = self.parse_items_query(collection_id, request.query_params)  # validate first
            import pygeoapi.api.itemtypes as itemtypes_api

            return await self.pygeoapi(request, itemtypes_api.get_collection_items, collection_id, check=False)
        if f not in ("", "json", "geojson"):
            raise InvalidParameterError(f"f '{f[:20]}' is not supported here; use json, geojson or html.")
        q = self.parse_items_query(collection_id, request.query_params)
        headers = self._crs_header(collection_id, q)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if q.limit > STREAM_ABOVE:
            # big pages: count first, then write features as PostgreSQL sends them
            matched = await run_in_threadpool(self.service.matched, collection_id, q)

            def tail_of(returned: int, has_more: bool, last_id: Any) -> dict:
                page = Page([], returned, matched, has_more, last_id)
                tail: dict[str, Any] = {"numberReturned": returned}
                if matched is not None:
                    tail["numberMatched"] = matched
                tail["timeStamp"] = stamp
                tail["links"] = self._links(request, collection_id, q, page)
                return tail

            rows = self.service.stream(collection_id, q)
            return StreamingResponse(iter_streamed(rows, q.limit, {"type": "FeatureCollection"}, tail_of),
                                     media_type=GEOJSON, headers=headers)
        page = await run_in_threadpool(self.service.page, collection_id, q)
        tail: dict[str, Any] = {"numberReturned": page.number_returned}
        if page.number_matched is not None:
            tail["numberMatched"] = page.number_matched
        tail["timeStamp"] = stamp
        tail["links"] = self._links(request, collection_id, q, page)
        return StreamingResponse(
            iter_collection(page, {"type": "FeatureCollection"}, tail), media_type=GEOJSON, headers=headers
        )

    async def item(self, request: Request) -> Response:
        collection_id = request.path_params["collection_id"]
        item_id = request.path_params["item_id"]
        if request.method in ("PUT", "PATCH", "DELETE"):
            return await self.write_item(request, collection_id, item_id)
        self.check_read(request)
        self._collection(collection_id)
        for key in request.query_params:
            if key not in ITEM_PARAMS:
                raise InvalidParameterError(f"Unknown query parameter '{key[:60]}'; allowed: {', '.join(sorted(ITEM_PARAMS))}.")
        f = (request.query_params.get("f") or "").lower()
        if f in ("html", "jsonld") or (not f and _wants_html(request)):
            import pygeoapi.api.itemtypes as itemtypes_api

            return await self.pygeoapi(request, itemtypes_api.get_collection_item, collection_id, item_id, check=False)
        if f not in ("", "json", "geojson"):
            raise InvalidParameterError(f"f '{f[:20]}' is not supported here; use json, geojson or html.")
        q = FeatureQuery()
        if "crs" in request.query_params:
            _, q.out_srid, q.out_flip = parse_crs(request.query_params["crs"])
        feature = await run_in_threadpool(self.service.item, collection_id, item_id, q)
        return Response(self._with_links(feature, collection_id, item_id), media_type=GEOJSON,
                        headers=self._crs_header(collection_id, q))

    def _crs_header(self, collection_id: str, q: FeatureQuery) -> dict:
        if not BY_ID[collection_id].geom_column:
            return {}
        uri = CRS84 if (q.out_srid == 4326 and not q.out_flip) else crs_uri(q.out_srid)
        return {"Content-Crs": f"<{uri}>"}

    def _with_links(self, feature: str, collection_id: str, item_id: str) -> str:
        base = f"{self.base_url}/collections/{collection_id}"
        links = [
            {"rel": "self", "type": GEOJSON, "href": f"{base}/items/{urllib.parse.quote(item_id)}"},
            {"rel": "collection", "type": "application/json", "href": base},
        ]
        return feature[:-1] + ',"links":' + json.dumps(links) + "}"

    # -- writes (Features Part 4: update of the review fields) -----------------------------
    async def write_item(self, request: Request, collection_id: str, item_id: str) -> Response:
        token_name = self.require_token(request)
        self._collection(collection_id)
        spec = BY_ID[collection_id]
        if request.method == "DELETE" or not spec.writable:
            return ogc_error(405, "MethodNotAllowed", f"Items of {collection_id} cannot be {'deleted' if request.method == 'DELETE' else 'changed'}.")
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise InvalidParameterError("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidParameterError("The request body must be a JSON object or a GeoJSON Feature.")
        props = body.get("properties") if body.get("type") == "Feature" else body
        if not isinstance(props, dict):
            raise InvalidParameterError("The Feature has no properties object.")
        unknown = [k for k in props if k not in spec.writable and k not in ("id",)]
        if request.method == "PATCH" and unknown:
            raise InvalidParameterError(f"Only {', '.join(spec.writable)} can be changed; got {', '.join(unknown)[:100]}.")
        number = as_int_id(item_id, "item")

        def write() -> None:
            with self.engine.begin() as conn:
                if collection_id == "parcel-alerts":
                    review_alert(conn, number, props.get("review_status"),
                                 props.get("reviewer") or token_name, props.get("review_note"))
                else:
                    correct_article_label(conn, number, props.get("sentiment"),
                                          props.get("reviewer") or token_name, props.get("note"))

        await run_in_threadpool(write)
        feature = await run_in_threadpool(self.service.item, collection_id, item_id, FeatureQuery())
        return Response(self._with_links(feature, collection_id, item_id), media_type=GEOJSON)

    # -- tiles ------------------------------------------------------------------------------
    async def tile(self, request: Request) -> Response:
        self.check_read(request)
        collection_id = request.path_params["collection_id"]
        self._collection(collection_id)
        if not BY_ID[collection_id].tiles:
            raise NotFoundError(f"Collection {collection_id} has no vector tiles.")
        if request.path_params["tms"] != "WebMercatorQuad":
            raise NotFoundError("Only the WebMercatorQuad tile matrix set is served.")
        for key in request.query_params:
            if key not in ("f",):
                raise InvalidParameterError(f"Unknown query parameter '{key[:60]}' for a tile.")
        f = request.query_params.get("f", "mvt").lower()
        if f not in ("mvt", "pbf"):
            raise InvalidParameterError("Tiles are served as f=mvt only.")
        z = _int(request.path_params["z"], "tileMatrix", 0)
        y = _int(request.path_params["y"], "tileRow", 0)
        x = _int(request.path_params["x"], "tileCol", 0)
        if z > 24 or x >= 2**z or y >= 2**z:
            raise NotFoundError(f"Tile {z}/{y}/{x} is outside WebMercatorQuad.")
        data = await run_in_threadpool(self.service.tile, collection_id, z, x, y)
        if not data:
            return Response(status_code=204, headers={"Content-Type": MVT})
        return Response(data, media_type=MVT)

    # -- conformance, processes, jobs ------------------------------------------------------
    async def conformance(self, request: Request) -> Response:
        import pygeoapi.api as core_api

        response = await self.pygeoapi(request, core_api.conformance)
        if response.status_code == 200 and response.headers.get("content-type", "").startswith("application/json"):
            doc = json.loads(response.body)
            doc["conformsTo"] = sorted(set(doc["conformsTo"]) | set(EXTRA_CONFORMANCE))
            return JSONResponse(doc)
        return response

    async def execute(self, request: Request) -> Response:
        import pygeoapi.api.processes as processes_api

        self.require_token(request)
        return await self.pygeoapi(request, processes_api.execute_process, request.path_params["process_id"])

    async def jobs(self, request: Request) -> Response:
        import pygeoapi.api.processes as processes_api

        job_id = request.path_params.get("job_id")
        if request.method == "DELETE":
            self.require_token(request)
            return await self.pygeoapi(request, processes_api.delete_job, job_id)
        self.check_read(request)
        return await self.pygeoapi(request, processes_api.get_jobs, job_id)

    # -- digest ----------------------------------------------------------------------------
    async def digest_feedback(self, request: Request) -> Response:
        token_name = self.require_token(request)
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise InvalidParameterError("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidParameterError('The body must be {"article_id", "label", "reviewer", "note"}.')
        unknown = set(body) - {"article_id", "label", "reviewer", "note"}
        if unknown:
            raise InvalidParameterError(f"Unknown field(s) {', '.join(sorted(unknown))[:80]}.")
        if "article_id" not in body:
            raise InvalidParameterError("'article_id' is required.")
        article_id = as_int_id(body["article_id"], "article")

        def write() -> int:
            with self.engine.begin() as conn:
                return correct_article_label(conn, article_id, body.get("label"),
                                             body.get("reviewer") or token_name, body.get("note"))

        feedback_id = await run_in_threadpool(write)
        return JSONResponse({"id": feedback_id, "article_id": article_id, "label": body.get("label")}, status_code=201)

    async def digest(self, request: Request) -> Response:
        self.check_read(request)
        raw = request.path_params["date"]
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidParameterError(f"date '{raw[:20]}' is not YYYY-MM-DD.") from None
        for key in request.query_params:
            if key not in ("f", "lang"):
                raise InvalidParameterError(f"Unknown query parameter '{key[:60]}'; allowed: f.")
        f = (request.query_params.get("f") or "html").lower()
        if f not in ("html", "json", "pdf"):
            raise InvalidParameterError("f must be html, json or pdf.")
        from api.digest import render_digest

        content, media_type = await run_in_threadpool(render_digest, self.engine, day, f, self.base_url)
        return Response(content, media_type=media_type)

    # -- routes -----------------------------------------------------------------------------
    def routes(self) -> list:
        import pygeoapi.api as core_api
        import pygeoapi.api.itemtypes as itemtypes_api
        import pygeoapi.api.processes as processes_api
        import pygeoapi.api.tiles as tiles_api

        def guarded(handler):
            async def endpoint(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:  # noqa: BLE001 - every error becomes an OGC exception
                    return error_response(exc)

            return endpoint

        def passthrough(fn, *names, check=True, read=True):
            async def handler(request: Request) -> Response:
                if read:
                    self.check_read(request)
                if "collection_id" in names:
                    self._collection(request.path_params["collection_id"])
                args = [request.path_params[n] for n in names]
                return await self.pygeoapi(request, fn, *args, check=check)

            return guarded(handler)

        cid = "{collection_id}"
        return [
            Route("/", passthrough(core_api.landing_page)),
            Route("/openapi", passthrough(core_api.openapi_)),
            Route("/conformance", guarded(self.conformance)),
            Route("/TileMatrixSets", passthrough(tiles_api.tilematrixsets)),
            Route("/TileMatrixSets/{tileMatrixSetId}", passthrough(tiles_api.tilematrixset, "tileMatrixSetId")),
            Route("/collections", passthrough(core_api.describe_collections)),
            Route(f"/collections/{cid}", passthrough(core_api.describe_collections, "collection_id")),
            Route(f"/collections/{cid}/queryables", passthrough(itemtypes_api.get_collection_queryables, "collection_id")),
            Route(f"/collections/{cid}/schema", passthrough(core_api.get_collection_schema, "collection_id")),
            Route(f"/collections/{cid}/items", guarded(self.items), methods=["GET", "POST"]),
            Route(f"/collections/{cid}/items/{{item_id}}", guarded(self.item), methods=["GET", "PUT", "PATCH", "DELETE"]),
            Route(f"/collections/{cid}/tiles", passthrough(tiles_api.get_collection_tiles, "collection_id")),
            Route(f"/collections/{cid}/tiles/{{tileMatrixSetId}}", passthrough(tiles_api.get_collection_tiles_metadata, "collection_id", "tileMatrixSetId", check=False)),
            Route(f"/collections/{cid}/tiles/{{tileMatrixSetId}}/metadata", passthrough(tiles_api.get_collection_tiles_metadata, "collection_id", "tileMatrixSetId", check=False)),
            Route(f"/collections/{cid}/tiles/{{tms}}/{{z}}/{{y}}/{{x}}", guarded(self.tile)),
            Route("/processes", passthrough(processes_api.describe_processes)),
            Route("/processes/{process_id}", passthrough(processes_api.describe_processes, "process_id")),
            Route("/processes/{process_id}/execution", guarded(self.execute), methods=["POST"]),
            Route("/jobs", guarded(self.jobs)),
            Route("/jobs/{job_id}", guarded(self.jobs), methods=["GET", "DELETE"]),
            Route("/jobs/{job_id}/results", passthrough(processes_api.get_job_result, "job_id")),
            Route("/digest/feedback", guarded(self.digest_feedback), methods=["POST"]),
            Route("/digest/{date}", guarded(self.digest)),
        ]


_EXTERNAL_PARAMETERS = {
    "datetime": {"name": "datetime", "in": "query", "required": False, "style": "form", "explode": False,
                 "schema": {"type": "string"},
                 "description": "RFC 3339 instant or interval ('../2025-01-01', '2025-01-01/..')."},
    "featureId": {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}},
    "sortby": {"name": "sortby", "in": "query", "required": False, "style": "form", "explode": False,
               "schema": {"type": "array", "items": {"type": "string", "pattern": "[+|-]?[A-Za-z_].*"}}},
    "tileMatrixSetId": {"name": "tileMatrixSetId", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": ["WebMercatorQuad"]}},
    "tileMatrix": {"name": "tileMatrix", "in": "path", "required": True, "schema": {"type": "string"}},
    "tileRow": {"name": "tileRow", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}},
    "tileCol": {"name": "tileCol", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}},
}


def inline_external_refs(doc: Any) -> Any:
    """Replace references to schemas.opengis.net & co by local definitions, so the document is
    complete offline (clients, schemathesis) -- the operations centre may have no internet."""
    if isinstance(doc, list):
        return [inline_external_refs(v) for v in doc]
    if not isinstance(doc, dict):
        return doc
    ref = doc.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        fragment = ref.rsplit("#", 1)[-1] if "#" in ref else ref.rsplit("/", 1)[-1].removesuffix(".yaml")
        name = fragment.rsplit("/", 1)[-1]
        if "/parameters/" in fragment or ref.endswith("parameters/sortby.yaml"):
            return dict(_EXTERNAL_PARAMETERS.get(name) or {
                "name": name, "in": "query", "required": False, "schema": {"type": "string"}})
        if "/responses/" in fragment or "/responses/" in ref:
            return {"description": name, "content": {"application/json": {"schema": {"type": "object"}}}}
        return {"type": "object"}
    return {k: inline_external_refs(v) for k, v in doc.items()}


def patch_openapi(openapi: dict, routes: OGCRoutes) -> dict:
    """Declare what we serve beyond pygeoapi's document: filter/CRS/sort parameters, equality
    query parameters of the queryables (so GDAL sends them), review writes, the digest."""
    params = openapi.setdefault("components", {}).setdefault("parameters", {})
    extra = {
        "filter": {"name": "filter", "in": "query", "required": False, "schema": {"type": "string"},
                   "description": "CQL2 text or JSON filter (OGC API Features Part 3)."},
        "filter-lang": {"name": "filter-lang", "in": "query", "required": False,
                        "schema": {"type": "string", "enum": ["cql2-text", "cql2-json"]}},
        "filter-crs": {"name": "filter-crs", "in": "query", "required": False, "schema": {"type": "string", "format": "uri"}},
        "crs": {"name": "crs", "in": "query", "required": False, "schema": {"type": "string", "format": "uri"}},
        "bbox-crs": {"name": "bbox-crs", "in": "query", "required": False, "schema": {"type": "string", "format": "uri"}},
        "sortby": {"name": "sortby", "in": "query", "required": False, "style": "form", "explode": False,
                   "schema": {"type": "array", "items": {"type": "string", "pattern": "[+|-]?[A-Za-z_].*"}}},
        "cursor": {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
                   "description": "Opaque keyset cursor issued in rel=next links."},
    }
    params.update({k: v for k, v in extra.items() if k not in params or k in ("filter", "cursor")})
    security = {"bearer": {"type": "http", "scheme": "bearer"}}
    openapi["components"].setdefault("securitySchemes", {}).update(security)
    paths = openapi.setdefault("paths", {})
    for collection_id in routes.collections:
        info = routes.service.collection(collection_id).info
        path = paths.get(f"/collections/{collection_id}/items", {})
        get = path.get("get")
        if get is not None:
            names = {(p.get("$ref", "").rsplit("/", 1)[-1].removesuffix(".yaml") or p.get("name"))
                     for p in get.get("parameters", [])}
            for name in ("filter", "filter-lang", "filter-crs", "crs", "bbox-crs", "sortby", "cursor"):
                if name not in names:
                    get["parameters"].append({"$ref": f"#/components/parameters/{name}"})
            declared = {p.get("name") for p in get["parameters"] if "name" in p}
            for prop in info.properties:
                if prop in declared:
                    continue
                type_, fmt = info.json_type(prop)
                if type_ == "object":
                    continue
                schema = {"type": type_} | ({"format": fmt} if fmt else {})
                get["parameters"].append({"name": prop, "in": "query", "required": False, "style": "form",
                                          "explode": False, "schema": schema})
            get.get("responses", {}).setdefault("400", {"$ref": "#/components/responses/InvalidParameter"})
            path.pop("post", None)
            path.pop("options", None)
        item_path = paths.get(f"/collections/{collection_id}/items/{{featureId}}")
        if item_path is not None:
            for method in ("put", "delete", "options"):
                item_path.pop(method, None)
            spec = BY_ID[collection_id]
            if spec.writable:
                item_path["patch"] = {
                    "summary": f"Review an item of {collection_id}",
                    "tags": [collection_id],
                    "operationId": f"patch{collection_id.replace('-', '')}Item",
                    "security": [{"bearer": []}],
                    "parameters": [dict(_EXTERNAL_PARAMETERS["featureId"])],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "additionalProperties": False,
                        "properties": {k: {"type": "string"} for k in spec.writable}}}}},
                    "responses": {"200": {"description": "The updated feature"},
                                  "400": {"$ref": "#/components/responses/InvalidParameter"},
                                  "401": {"description": "No or invalid token"},
                                  "404": {"$ref": "#/components/responses/NotFound"}},
                }
    paths["/digest/{date}"] = {"get": {
        "summary": "Daily digest of online news (html, json or pdf)", "tags": ["digest"],
        "operationId": "getDigest",
        "parameters": [
            {"name": "date", "in": "path", "required": True, "schema": {"type": "string", "format": "date"}},
            {"name": "f", "in": "query", "required": False, "schema": {"type": "string", "enum": ["html", "json", "pdf"]}},
        ],
        "responses": {"200": {"description": "The digest"}, "400": {"description": "Bad date or format"}},
    }}
    paths["/digest/feedback"] = {"post": {
        "summary": "Correct an article's sentiment label", "tags": ["digest"], "operationId": "postDigestFeedback",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["article_id", "label", "reviewer"], "additionalProperties": False,
            "properties": {"article_id": {"type": "integer"},
                           "label": {"type": "string", "enum": ["negative", "neutral", "positive"]},
                           "reviewer": {"type": "string"}, "note": {"type": "string"}}}}}},
        "responses": {"201": {"description": "Stored"}, "400": {"description": "Invalid"},
                      "401": {"description": "No or invalid token"}, "404": {"description": "No such article"}},
    }}
    openapi = inline_external_refs(openapi)
    responses = openapi["components"].setdefault("responses", {})
    responses.setdefault("InvalidParameter", {"description": "A query parameter has an invalid value.",
                                              "content": {"application/json": {"schema": {"type": "object"}}}})
    responses.setdefault("NotFound", {"description": "Not found.",
                                      "content": {"application/json": {"schema": {"type": "object"}}}})
    return openapi


def create_app(settings: ApiSettings, database_url: str, engine: Engine | None = None,
               config: dict | None = None) -> Starlette:
    """Build the ASGI app.

    Parameters
    ----------
    settings
        API settings (``ApiSettings()`` reads ``IOC_API_*``).
    database_url
        libpq URI of the PostGIS database (migrated to head).
    engine
        SQLAlchemy Engine for writes; created from ``database_url`` when omitted.
    config
        A pygeoapi configuration; generated from the database when omitted.
    """
    from pygeoapi.openapi import get_oas

    from gis.db.session import make_engine

    engine = engine or make_engine(database_url, pool_size=4)
    if config is None:
        config = build_config(collect_table_infos(engine), settings, database_url)
    tokens = TokenStore.from_settings(settings.tokens, settings.tokens_file)
    openapi = get_oas(config, fail_on_invalid_collection=False)
    routes = OGCRoutes(config, openapi, settings, database_url, engine, tokens)
    routes.api.openapi = patch_openapi(openapi, routes)

    import pygeoapi

    static = StaticFiles(directory=str(__import__("pathlib").Path(pygeoapi.__file__).parent / "static"))

    async def not_found(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            return ogc_error(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path[:120]}.")
        return ogc_error(exc.status_code, "NotFound" if exc.status_code == 404 else "Error",
                         f"No resource at {request.url.path[:120]}." if exc.status_code == 404 else str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    middleware = []
    vendor = []
    if settings.local_assets:
        from api.assets import LocalAssetsMiddleware, libraries, rewrites, vendor_mounts

        libs = libraries()
        vendor = vendor_mounts(libs)
        middleware.append(Middleware(LocalAssetsMiddleware,
                                     pairs=rewrites(libs, config["server"]["url"])))
    if settings.cors:
        middleware.append(Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"],
                                     allow_headers=["*"], expose_headers=["*"]))
    app = Starlette(
        routes=[Mount("/static", static), *vendor, *routes.routes()],
        middleware=middleware,
        exception_handlers={HTTPException: not_found, Exception: server_error},
    )
    app.state.ogc = routes
    return app


def app_from_environment() -> Starlette:
    """ASGI factory for ``uvicorn --factory api.app:app_from_environment`` (workers > 1)."""
    import os

    from api.settings import ApiSettings

    database_url = os.environ.get("IOC_API_DATABASE_URL") or os.environ.get("IOC_DATABASE_URL")
    if not database_url:
        raise RuntimeError("IOC_DATABASE_URL is not set")
    return create_app(ApiSettings(), database_url)
