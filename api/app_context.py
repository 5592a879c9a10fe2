"""What every route group is given: :class:`AppContext` (settings, database, tokens, the feature
service, pygeoapi's API object) and the :class:`RouteGroup` a route factory returns.

A route factory is ``def my_routes(ctx: AppContext) -> RouteGroup | list[BaseRoute]``; see
:mod:`api.routes` for where factories are listed. Handlers raise :mod:`api.errors` exceptions
and the app answers them (OGC exception body, status from the one table).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

from api.auth import TokenStore
from api.collections import TableInfo
from api.errors import NotFoundError, public_message
from api.service import FeatureService
from api.settings import ApiSettings


@dataclass
class RouteGroup:
    """Routes plus the OpenAPI path items that describe them (merged into ``/openapi``)."""

    routes: list[BaseRoute]
    openapi_paths: dict[str, dict] = field(default_factory=dict)


RouteFactory = Callable[["AppContext"], "RouteGroup | list[BaseRoute]"]


@dataclass
class AppContext:
    """The served app's shared state, built once by :func:`api.app.create_app`."""

    settings: ApiSettings
    database_url: str
    engine: Engine
    tokens: TokenStore
    config: dict  # the pygeoapi configuration
    service: FeatureService
    api: Any = None  # pygeoapi.api.API, set by create_app once the OpenAPI is patched

    @property
    def base_url(self) -> str:
        return self.settings.public_url()

    @property
    def collection_ids(self) -> list[str]:
        """The feature collections (:mod:`api.collections`)."""
        return [
            k
            for k, v in self.config["resources"].items()
            if v["type"] == "collection"
            and any(p.get("type") == "feature" for p in v.get("providers", []))
        ]

    @property
    def coverage_ids(self) -> list[str]:
        """The coverage collections (stored imagery, :mod:`api.imagery_routes`)."""
        return [
            k
            for k, v in self.config["resources"].items()
            if v["type"] == "collection"
            and any(p.get("type") == "coverage" for p in v.get("providers", []))
        ]

    def collection(self, collection_id: str) -> TableInfo:
        """The :class:`TableInfo` of a published collection; NotFoundError otherwise."""
        if collection_id not in self.collection_ids:
            raise NotFoundError(f"No collection '{collection_id[:80]}'; see /collections.")
        return self.service.collection(collection_id).info

    def infos(self) -> dict[str, TableInfo]:
        return {cid: self.service.collection(cid).info for cid in self.collection_ids}

    # -- tokens --------------------------------------------------------------------------------
    def authenticate(self, request: Request):
        """Who presented the request's token (:class:`api.auth.Principal`); 401 otherwise."""
        return self.tokens.authenticate(request.headers)

    def identify(self, request: Request) -> str:
        """The name of the request's valid token; AuthenticationError (401) otherwise."""
        return self.tokens.identify(request.headers)

    def require(self, request: Request, role: str, what: str):
        """The token's principal when it may act with ``role``: 401 without a valid token, 403
        (:class:`api.errors.ForbiddenError`, naming the role) with a token lacking it."""
        return self.tokens.require(request.headers, role, what)

    def check_read(self, request: Request) -> None:
        if self.settings.protect_reads:
            self.identify(request)

    # -- pygeoapi ------------------------------------------------------------------------------
    async def pygeoapi(self, request: Request, fn: Callable, *args, check: bool = True) -> Response:
        """Run one of pygeoapi's handlers (``fn(api, api_request, *args)``) off the event loop;
        error descriptions are cleaned of server paths."""
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
            if status >= 400:
                content = _clean_error(headers, content)
            if status != HTTPStatus.NO_CONTENT:
                content = apply_gzip(headers, content)
        if headers.get("Content-Type") == "text/html":
            response: Response = HTMLResponse(content=content, status_code=status)
        else:
            response = Response(content, status_code=status)
        response.headers.update(headers)
        return response


def _clean_error(headers: dict, content: Any) -> Any:
    """pygeoapi's JSON exception body with its description made public (no server path)."""
    if "json" not in str(headers.get("Content-Type", "")):
        return content
    try:
        doc = json.loads(content)
    except (TypeError, ValueError):
        return content
    if isinstance(doc, dict) and isinstance(doc.get("description"), str):
        doc["description"] = public_message(doc["description"])
        return json.dumps(doc, ensure_ascii=False)
    return content
