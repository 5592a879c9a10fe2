"""Land reports over HTTP (:mod:`gis.report`, as ``ioc land report``) and the officers' review
page.

- ``GET /collections/parcel-alerts/items/{id}/report?f=html|pdf``: the A4 report of one alert;
- ``GET /reports/communes/{code}?f=html|pdf``: a commune's alert summary (current or pre-2025
  code);
- ``GET /review/alerts``: the review page (:mod:`api.review_page`).

The published parcels never carry the owner's name, so a report shows it only to a request
with a token that may review alerts (officer or admin); without a token it says the name is
not published, and an invalid token is a 401. Unknown alerts and communes answer 404.
"""

from __future__ import annotations

import threading

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.app_context import AppContext, RouteGroup
from api.auth import ALERT_REVIEW_ROLE
from api.errors import ApiError, InvalidParameterError, NotFoundError, ServiceUnavailableError
from api.review import as_int_id

FORMATS = ("html", "pdf")
#: PDFs printed at once per process (each starts a headless Chromium: ~0.3 GB, 1-3 s of CPU)
PDF_SLOTS = 2
PDF_WAIT_S = 60.0

_FORMAT_PARAM = {
    "name": "f",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": list(FORMATS), "default": "html"},
}
_RESPONSES = {
    "200": {
        "description": "The report",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "400": {"description": "Unknown query parameter or format"},
    "401": {"description": "The token presented is not valid"},
    "404": {"description": "No such alert or commune"},
}
REPORT_PATHS: dict[str, dict] = {
    "/collections/parcel-alerts/items/{featureId}/report": {
        "get": {
            "summary": "A4 report of a parcel alert (Vietnamese; html or pdf)",
            "description": "Parcel, owner as recorded (shown with an officer token only), legal land-use "
            "code, observed change, scenes, before/after chips, locator map, rules fired, "
            "review history.",
            "tags": ["parcel-alerts"],
            "operationId": "getParcelAlertReport",
            "security": [{}, {"bearer": []}],
            "parameters": [
                {
                    "name": "featureId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                },
                _FORMAT_PARAM,
            ],
            "responses": _RESPONSES,
        }
    },
    "/reports/communes/{code}": {
        "get": {
            "summary": "A4 summary of a commune's parcel alerts (Vietnamese; html or pdf)",
            "tags": ["parcel-alerts"],
            "operationId": "getCommuneAlertReport",
            "security": [{}, {"bearer": []}],
            "parameters": [
                {
                    "name": "code",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "Commune code, current or before the 2025 merger",
                },
                _FORMAT_PARAM,
            ],
            "responses": _RESPONSES,
        }
    },
}


def _format(request: Request) -> str:
    for key in request.query_params:
        if key not in ("f", "lang"):
            raise InvalidParameterError(f"Unknown query parameter '{key[:60]}'; allowed: f.")
    f = (request.query_params.get("f") or "html").lower()
    if f not in FORMATS:
        raise InvalidParameterError("f must be html or pdf.")
    return f


def report_routes(ctx: AppContext) -> RouteGroup:
    """The report routes and the review page (see the module docstring)."""
    from api.review_page import review_page_routes

    slots = threading.BoundedSemaphore(PDF_SLOTS)

    def show_owner(request: Request) -> bool:
        if not (request.headers.get("authorization") or request.headers.get("x-api-key")):
            ctx.check_read(request)
            return False
        return ctx.authenticate(request).may(ALERT_REVIEW_ROLE)  # 401 for an invalid token

    def render(build, key, fmt: str, owner: bool) -> tuple[bytes, str]:
        from gis import report
        from gis.errors import RecordNotFoundError

        try:
            with ctx.engine.connect() as conn:
                data = build(conn, key, show_owner=owner)
        except RecordNotFoundError as exc:
            raise NotFoundError(str(exc)) from exc
        html = report.render_html(data, base_url=ctx.base_url)
        if fmt == "html":
            return html.encode("utf-8"), "text/html; charset=utf-8"
        if not slots.acquire(timeout=PDF_WAIT_S):
            raise ServiceUnavailableError(
                "Too many reports are being printed; try again in a minute."
            )
        try:
            return report.render_pdf(html), "application/pdf"
        except report.ReportError as exc:
            raise ApiError(str(exc)) from exc
        finally:
            slots.release()

    async def alert(request: Request) -> Response:
        from gis.report import alert_report

        fmt = _format(request)
        owner = show_owner(request)
        alert_id = as_int_id(request.path_params["item_id"], "parcel alert")
        content, media_type = await run_in_threadpool(render, alert_report, alert_id, fmt, owner)
        headers = (
            {"Content-Disposition": f'inline; filename="alert-{alert_id}.{fmt}"'}
            if fmt == "pdf"
            else {}
        )
        return Response(content, media_type=media_type, headers=headers)

    async def commune(request: Request) -> Response:
        from gis.report import commune_report

        fmt = _format(request)
        owner = show_owner(request)
        code = request.path_params["code"]
        if not code.isalnum() or len(code) > 16:
            raise NotFoundError(f"No commune '{code[:40]}'.")
        content, media_type = await run_in_threadpool(render, commune_report, code, fmt, owner)
        headers = (
            {"Content-Disposition": f'inline; filename="commune-{code}.{fmt}"'}
            if fmt == "pdf"
            else {}
        )
        return Response(content, media_type=media_type, headers=headers)

    group = RouteGroup(
        [
            Route("/collections/parcel-alerts/items/{item_id}/report", alert, methods=["GET"]),
            Route("/reports/communes/{code}", commune, methods=["GET"]),
        ],
        dict(REPORT_PATHS),
    )
    page = review_page_routes(ctx)
    group.routes.extend(page.routes)
    group.openapi_paths.update(page.openapi_paths)
    return group
