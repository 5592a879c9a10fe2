"""Routes of the service's own records: the runs of the scheduled jobs of ``ioc run`` and the
daily digests it stored (tables ``job_runs`` and ``stored_digests``, migration 0009).

- ``GET /service/runs[?job=NAME&status=S&limit=N]``: recorded runs, newest first (``job=crawl``
  matches every outlet's ``crawl:<outlet>``);
- ``GET /service/runs/{id}``: one run;
- ``GET /service/digests``: the days whose digest is stored.

``GET /digest/{date}`` serves a stored digest first (:func:`stored_digest`) and builds one
only for a day that has none. (``/jobs`` is OGC API - Processes' and not ours.)
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.app_context import AppContext, RouteGroup
from api.errors import InvalidParameterError, NotFoundError

RUN_STATUSES = ("running", "succeeded", "failed")
MEDIA = {"html": "text/html; charset=utf-8", "json": "application/json", "pdf": "application/pdf"}


def stored_digest(engine: Engine, day: dt.date, fmt: str) -> tuple[bytes, str] | None:
    """(content, media type) of the digest stored for ``day``, or None when none is stored.

    A stored digest without PDF (Chromium was missing when it was built) answers None for
    ``pdf`` so the caller can render one.
    """
    column = {"html": "html", "json": "data::text", "pdf": "pdf"}[fmt]
    with engine.connect() as conn:
        value = conn.execute(
            text(f"SELECT {column} FROM stored_digests WHERE day = :d"), {"d": day}
        ).scalar()
    if value is None:
        return None
    if fmt == "pdf":
        return bytes(value), MEDIA["pdf"]
    return value.encode("utf-8"), MEDIA[fmt]


def _runs(
    engine: Engine, job: str | None, status: str | None, limit: int, run_id: int | None = None
) -> list[dict]:
    where, params = [], {"limit": limit}
    if run_id is not None:
        where.append("id = :id")
        params["id"] = run_id
    if job:
        where.append("(job = :job OR job LIKE :prefix)")
        params.update(job=job, prefix=f"{job}:%")
    if status:
        where.append("status = :status")
        params["status"] = status
    sql = (
        "SELECT id, job, status, started_at, finished_at, counts, error, host, pid, trigger "
        "FROM job_runs"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY started_at DESC, id DESC LIMIT :limit"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).mappings().all()
    out = []
    for r in rows:
        d: dict[str, Any] = dict(r)
        d["seconds"] = (
            round((d["finished_at"] - d["started_at"]).total_seconds(), 3)
            if d["finished_at"]
            else None
        )
        for key in ("started_at", "finished_at"):
            d[key] = d[key].isoformat() if d[key] else None
        out.append(d)
    return out


SERVICE_PATHS: dict[str, dict] = {
    "/service/runs": {
        "get": {
            "summary": "Recorded runs of the scheduled jobs of `ioc run`, newest first",
            "tags": ["service"],
            "operationId": "getServiceRuns",
            "parameters": [
                {
                    "name": "job",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "A job (digest, backup, crawl:vnexpress ...); crawl = every outlet's crawl.",
                },
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(RUN_STATUSES)},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                },
            ],
            "responses": {
                "200": {"description": "The runs"},
                "400": {"description": "Bad parameter"},
            },
        }
    },
    "/service/runs/{runId}": {
        "get": {
            "summary": "One recorded run",
            "tags": ["service"],
            "operationId": "getServiceRun",
            "parameters": [
                {"name": "runId", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {"200": {"description": "The run"}, "404": {"description": "No such run"}},
        }
    },
    "/service/digests": {
        "get": {
            "summary": "Days whose daily digest is stored (served as built at /digest/{date})",
            "tags": ["service"],
            "operationId": "getServiceDigests",
            "responses": {"200": {"description": "The stored digests"}},
        }
    },
}


def service_routes(ctx: AppContext) -> RouteGroup:
    """The routes above (reads: guarded like every read when IOC_API_PROTECT_READS is on)."""
    engine = ctx.engine

    async def runs(request: Request) -> Response:
        ctx.check_read(request)
        params = request.query_params
        unknown = set(params) - {"job", "status", "limit", "f"}
        if unknown:
            raise InvalidParameterError(
                f"Unknown query parameter '{sorted(unknown)[0][:60]}'; allowed: job, status, limit."
            )
        status = params.get("status")
        if status and status not in RUN_STATUSES:
            raise InvalidParameterError(f"status must be one of {', '.join(RUN_STATUSES)}.")
        try:
            limit = int(params.get("limit", "50"))
        except ValueError:
            raise InvalidParameterError("limit must be an integer.") from None
        if not 1 <= limit <= 1000:
            raise InvalidParameterError("limit must be between 1 and 1000.")
        rows = await run_in_threadpool(_runs, engine, params.get("job"), status, limit)
        return JSONResponse({"runs": rows, "numberReturned": len(rows)})

    async def run(request: Request) -> Response:
        ctx.check_read(request)
        raw = request.path_params["run_id"]
        if not raw.isdigit() or len(raw) > 18:
            raise InvalidParameterError(f"run id '{raw[:20]}' is not a number.")
        rows = await run_in_threadpool(_runs, engine, None, None, 1, int(raw))
        if not rows:
            raise NotFoundError(f"No job run {raw}.")
        return JSONResponse(rows[0])

    async def digests(request: Request) -> Response:
        ctx.check_read(request)

        def query() -> list[dict]:
            with engine.connect() as conn:
                return [
                    {
                        "date": r.day.isoformat(),
                        "built_at": r.built_at.isoformat(),
                        "pdf": r.has_pdf,
                        "delivery": r.delivery,
                        "links": [
                            {
                                "href": f"{ctx.base_url}/digest/{r.day.isoformat()}?f={f}",
                                "type": MEDIA[f],
                                "rel": "alternate",
                            }
                            for f in ("html", "pdf", "json")
                        ],
                    }
                    for r in conn.execute(
                        text(
                            "SELECT day, built_at, pdf IS NOT NULL AS has_pdf, delivery FROM stored_digests "
                            "ORDER BY day DESC LIMIT 400"
                        )
                    )
                ]

        rows = await run_in_threadpool(query)
        return Response(
            json.dumps({"digests": rows}, default=str, ensure_ascii=False),
            media_type="application/json",
        )

    return RouteGroup(
        [
            Route("/service/runs", runs),
            Route("/service/runs/{run_id}", run),
            Route("/service/digests", digests),
        ],
        SERVICE_PATHS,
    )
