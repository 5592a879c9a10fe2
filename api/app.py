"""The served ASGI app, built by :func:`create_app` (a factory, titiler style).

Where things are (each concern in one module):

- routes, by group, and the list of groups served: :mod:`api.routes` (add route groups there,
  or pass ``extra_routes`` to :func:`create_app`); review writes :mod:`api.writes`; digest
  :mod:`api.digest`; what every group is given: :mod:`api.app_context`;
- query parameters: :mod:`api.params`; CQL2: :mod:`api.cql`; CRSs: :mod:`api.crs`;
- SQL: :mod:`api.sql`; running it on pooled connections: :mod:`api.service`, :mod:`api.pools`;
  streaming GeoJSON: :mod:`api.streaming`;
- errors and the one exception -> HTTP status table: :mod:`api.errors`;
- request-size limit: :mod:`api.limits`; OpenAPI additions: :mod:`api.openapi`;
- probes and Prometheus metrics: :mod:`api.health`, :mod:`api.metrics` (its middleware gives
  every request an id and measures it by route template);
- pygeoapi: configuration :mod:`api.config`, plugins :mod:`api.plugins`, HTML templates and
  browser libraries :mod:`api.assets`; the published collections: :mod:`api.collections`.

Settings come in as an :class:`api.settings.ApiSettings` and are handed down; nothing below
reads the environment.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from api.app_context import AppContext, RouteFactory
from api.auth import TokenStore
from api.config import build_config, collect_table_infos
from api.errors import ApiError, error_response
from api.limits import BodySizeLimitMiddleware
from api.metrics import ObservabilityMiddleware
from api.openapi import patch_openapi
from api.routes import build_routes
from api.service import ServiceSettings, get_service
from api.settings import ApiSettings
from gis.settings import LandSettings


async def _answer(request: Request, exc: Exception) -> Response:
    return error_response(exc, request.url.path)


def create_app(
    settings: ApiSettings,
    database_url: str,
    engine: Engine | None = None,
    config: dict | None = None,
    extra_routes: list[RouteFactory] | tuple = (),
    land: LandSettings | None = None,
) -> Starlette:
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
    extra_routes
        Route factories served besides :data:`api.routes.ROUTE_GROUPS`
        (``factory(ctx: AppContext) -> RouteGroup | list[BaseRoute]``).
    land
        Land settings for the land-change process (``LandSettings()`` reads ``IOC_LAND_*``
        when omitted), as ``ioc land detect`` honours them.
    """
    import pygeoapi
    from pygeoapi.api import API
    from pygeoapi.openapi import get_oas

    from gis.db.session import make_engine

    engine = engine or make_engine(database_url, pool_size=4)
    if config is None:
        from api.imagery_routes import scene_coverages

        config = build_config(
            collect_table_infos(engine),
            settings,
            database_url,
            land if land is not None else LandSettings(),
            coverages=scene_coverages(engine, settings.coverage_runs),
        )
    ctx = AppContext(
        settings=settings,
        database_url=database_url,
        engine=engine,
        tokens=TokenStore.from_settings(settings.tokens, settings.tokens_file),
        config=config,
        service=get_service(ServiceSettings.from_api_settings(settings, database_url)),
    )
    openapi = get_oas(config, fail_on_invalid_collection=False)
    ctx.api = API(config, openapi)
    routes, paths = build_routes(ctx, extra_routes)
    ctx.api.openapi = patch_openapi(openapi, ctx.infos(), paths)

    static = StaticFiles(directory=str(Path(pygeoapi.__file__).parent / "static"))
    mounts = [Mount("/static", static)]
    # outermost: request id (X-Request-ID) and metrics by route template (api.metrics)
    middleware = [Middleware(ObservabilityMiddleware)]
    if settings.cors:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["*"],
            )
        )
    middleware.append(Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes))
    if settings.local_assets:
        from api.assets import LocalAssetsMiddleware, libraries, rewrites, vendor_mounts

        libs = libraries()
        mounts += vendor_mounts(libs)
        middleware.append(
            Middleware(LocalAssetsMiddleware, pairs=rewrites(libs, config["server"]["url"]))
        )
    handlers = {
        cls: _answer
        for cls in (ApiError, HTTPException, psycopg.Error, DBAPIError, RecursionError, Exception)
    }
    app = Starlette(routes=[*mounts, *routes], middleware=middleware, exception_handlers=handlers)
    app.state.ctx = ctx
    return app


def app_from_environment() -> Starlette:
    """ASGI factory for ``uvicorn --factory api.app:app_from_environment`` (workers > 1)."""
    import os

    database_url = os.environ.get("IOC_API_DATABASE_URL") or os.environ.get("IOC_DATABASE_URL")
    if not database_url:
        raise RuntimeError("IOC_DATABASE_URL is not set")
    return create_app(ApiSettings(), database_url)
