"""``GET /review/alerts``: the land officers' review page.

One self-contained page (``api/templates/review/alerts.html``: inline CSS and script, nothing
from a CDN, so it works on a network without internet). In the browser it asks the API's own
endpoints: the new alerts from ``/collections/parcel-alerts/items?review_status=new&severity=…``
(most severe level first, newest first, 10 a page), the chips the alert's properties link
(``evidence_before`` / ``evidence_after``, when stored), the report
(``…/items/{id}/report``), and the review itself is the Features Part 4 ``PATCH`` on the item
(:mod:`api.writes` → :func:`gis.review.review_alert`, audited). The officer pastes a token once;
it is kept in the tab's ``sessionStorage`` only. A 401 or 403 answer is shown in words.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from api.app_context import AppContext, RouteGroup
from api.errors import InvalidParameterError

PAGE = Path(__file__).resolve().parent / "templates" / "review" / "alerts.html"

REVIEW_PAGE_PATHS: dict[str, dict] = {
    "/review/alerts": {
        "get": {
            "summary": "Review page for land officers (HTML): new parcel alerts, chips, report, confirm or dismiss",
            "tags": ["parcel-alerts"],
            "operationId": "getAlertReviewPage",
            "responses": {
                "200": {
                    "description": "The page",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        }
    },
}


def review_page_routes(ctx: AppContext) -> RouteGroup:
    """``GET /review/alerts`` (the page itself needs no token: its requests carry it)."""
    page = PAGE.read_text(encoding="utf-8").replace(
        "__BASE_URL__", html.escape(ctx.base_url, quote=True)
    )
    parts = urlsplit(ctx.base_url)
    origin = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    policy = (
        f"default-src 'self'; img-src 'self'{origin} data: blob:; style-src 'unsafe-inline'; "
        f"script-src 'unsafe-inline'; connect-src 'self'{origin}; frame-ancestors 'none'"
    )

    async def review_alerts(request: Request) -> Response:
        for key in request.query_params:
            raise InvalidParameterError(
                f"Unknown query parameter '{key[:60]}'; the page takes none."
            )
        return HTMLResponse(
            page, headers={"Cache-Control": "no-store", "Content-Security-Policy": policy}
        )

    return RouteGroup(
        [Route("/review/alerts", review_alerts, methods=["GET"])], dict(REVIEW_PAGE_PATHS)
    )
