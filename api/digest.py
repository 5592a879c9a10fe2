"""The daily digest over HTTP: ``GET /digest/{date}?f=html|json|pdf`` (the one stored by
``ioc run`` for that day, else built by :mod:`nlp.digest`) and ``POST /digest/feedback`` (a
media token corrects an article's sentiment label, as the digest page's form does, or a
citizen's post's: ``post_id`` instead of ``article_id``)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.app_context import AppContext, RouteGroup
from api.errors import ApiError, InvalidParameterError
from gis.db.models import SENTIMENT_LABELS


def render_digest(engine: Engine, day: dt.date, fmt: str, base_url: str = "") -> tuple[bytes, str]:
    """(content, media type) of the digest of ``day``; ``fmt`` is html, json or pdf (printed by
    headless Chromium).

    A digest stored by ``ioc run`` (table ``stored_digests``) is served as it was built; only a
    day without one is built now (:func:`nlp.digest.build_digest`)."""
    from api.service_routes import stored_digest

    stored = stored_digest(engine, day, fmt)
    if stored is not None:
        return stored
    # imported here: nlp brings scikit-learn and underthesea, which feature reads never need
    from nlp import digest as nlp_digest
    from nlp.errors import NLPError

    with engine.connect() as conn:
        digest = nlp_digest.build_digest(conn, day)
    if fmt == "json":
        return json.dumps(digest, ensure_ascii=False, default=str).encode(), "application/json"
    if fmt == "pdf":
        try:
            return nlp_digest.render_pdf(digest), "application/pdf"
        except NLPError as exc:
            raise ApiError(f"The PDF digest cannot be made on this server: {exc}.") from exc
    html = nlp_digest.render_html(digest, feedback_url=f"{base_url}/digest/feedback")
    return html.encode("utf-8"), "text/html; charset=utf-8"


FEEDBACK_FIELDS = {"article_id", "post_id", "label", "reviewer", "note"}

DIGEST_PATHS: dict[str, dict] = {
    "/digest/{date}": {
        "get": {
            "summary": "Daily digest of online news (html, json or pdf)",
            "tags": ["digest"],
            "operationId": "getDigest",
            "parameters": [
                {
                    "name": "date",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "date"},
                },
                {
                    "name": "f",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["html", "json", "pdf"]},
                },
            ],
            "responses": {
                "200": {"description": "The digest"},
                "400": {"description": "Bad date or format"},
            },
        }
    },
    "/digest/feedback": {
        "post": {
            "summary": "Correct the sentiment label of an article (article_id) or a citizen's post (post_id)",
            "tags": ["digest"],
            "operationId": "postDigestFeedback",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["label", "reviewer"],
                            "oneOf": [{"required": ["article_id"]}, {"required": ["post_id"]}],
                            "additionalProperties": False,
                            "properties": {
                                "article_id": {"type": "integer"},
                                "post_id": {"type": "integer"},
                                "label": {"type": "string", "enum": list(SENTIMENT_LABELS)},
                                "reviewer": {"type": "string"},
                                "note": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": {"description": "Stored"},
                "400": {"description": "Invalid"},
                "401": {"description": "No or invalid token"},
                "403": {"description": "The token may not correct labels"},
                "404": {"description": "No such article or post"},
            },
        }
    },
}


def digest_routes(ctx: AppContext) -> RouteGroup:
    """``GET /digest/{date}`` and ``POST /digest/feedback``."""

    async def feedback(request: Request) -> Response:
        from api.auth import LABEL_CORRECTION_ROLE
        from api.review import as_int_id, correct_article_label
        from api.writes import json_body

        principal = ctx.authenticate(request)
        principal.require(LABEL_CORRECTION_ROLE, "Correcting sentiment labels")  # 403 before 400
        body = await json_body(request)
        if not isinstance(body, dict):
            raise InvalidParameterError(
                'The body must be {"article_id" or "post_id", "label", "reviewer", "note"}.'
            )
        unknown = set(body) - FEEDBACK_FIELDS
        if unknown:
            raise InvalidParameterError(f"Unknown field(s) {', '.join(sorted(unknown))[:80]}.")
        given = [k for k in ("article_id", "post_id") if k in body]
        if len(given) != 1:
            raise InvalidParameterError(
                "Give either 'article_id' or 'post_id', not both."
                if given
                else "'article_id' (or 'post_id' for a citizen's post) is required."
            )
        key = given[0]
        genre = "post" if key == "post_id" else "article"
        if isinstance(body[key], bool) or not isinstance(body[key], int | str):
            raise InvalidParameterError(f"'{key}' must be an integer.")
        item_id = as_int_id(body[key], genre)

        def write() -> int:
            with ctx.engine.begin() as conn:
                return correct_article_label(
                    conn,
                    item_id,
                    body.get("label"),
                    body.get("reviewer") or principal.name,
                    body.get("note"),
                    principal=principal,
                    genre=genre,
                )

        feedback_id = await run_in_threadpool(write)
        return JSONResponse(
            {"id": feedback_id, key: item_id, "label": body.get("label")},
            status_code=201,
        )

    async def digest(request: Request) -> Response:
        ctx.check_read(request)
        raw = request.path_params["date"]
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidParameterError(f"date '{raw[:20]}' is not YYYY-MM-DD.") from None
        from api.processes import DIGEST_DAYS

        if not DIGEST_DAYS[0] <= day <= DIGEST_DAYS[1]:  # year 1 overflowed the 7-day window: 500
            raise InvalidParameterError(
                f"date must be between {DIGEST_DAYS[0]} and {DIGEST_DAYS[1]}."
            )
        for key in request.query_params:
            if key not in ("f", "lang"):
                raise InvalidParameterError(f"Unknown query parameter '{key[:60]}'; allowed: f.")
        f = (request.query_params.get("f") or "html").lower()
        if f not in ("html", "json", "pdf"):
            raise InvalidParameterError("f must be html, json or pdf.")
        content, media_type = await run_in_threadpool(
            render_digest, ctx.engine, day, f, ctx.base_url
        )
        return Response(content, media_type=media_type)

    return RouteGroup(
        [Route("/digest/feedback", feedback, methods=["POST"]), Route("/digest/{date}", digest)],
        DIGEST_PATHS,
    )
