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
        value = conn.execute(text(f"SELECT {column} FROM stored_digests WHERE day = :d"), {"d": day}).scalar()
    if value is None:
        return None
    if fmt == "pdf":
        return bytes(value), MEDIA["pdf"]
    return value.encode("utf-8"), MEDIA[fmt]


def _runs(engine: Engine, job: str | None, status: str | None, limit: int, run_id: int | None = None) -> list[dict]:
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
    sql = ("SELECT id, job, status, started_at, finished_at, counts, error, host, pid, trigger "
           "FROM job_runs" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY started_at DESC, id DESC LIMIT :limit")
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).mappings().all()
    out = []
    for r in rows:
        d: dict[str, Any] = dict(r)
        d["seconds"] = (round((d["finished_at"] - d["started_at"]).total_seconds(), 3)
                        if d["finished_at"] else None)
        for key in ("started_at", "finished_at"):
            d[key] = d[key].isoformat() if d[key] else None
        out.append(d)
    return out


def _error(exc: Exception, path: str) -> Response:
    try:
        from api.errors import error_response
    except ImportError:  # older api.errors
        status = 404 if isinstance(exc, NotFoundError) else 400
        return JSONResponse({"code": getattr(exc, "code", "NoApplicableCode"), "description": str(exc)},
                            status_code=status)
    return error_response(exc, path) if error_response.__code__.co_argcount > 1 else error_response(exc)


def service_routes(engine: Engine, check_read=None) -> list[Route]:
    """The routes above, over ``engine``; ``check_read(request)`` guards reads when given."""

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            try:
                if check_read is not None:
                    check_read(request)
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error becomes an OGC exception
                return _error(exc, request.url.path)

        return endpoint

    async def runs(request: Request) -> Response:
        params = request.query_params
        unknown = set(params) - {"job", "status", "limit", "f"}
        if unknown:
            raise InvalidParameterError(f"Unknown query parameter '{sorted(unknown)[0][:60]}'; "
                                        "allowed: job, status, limit.")
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
        raw = request.path_params["run_id"]
        if not raw.isdigit():
            raise InvalidParameterError(f"run id '{raw[:20]}' is not a number.")
        rows = await run_in_threadpool(_runs, engine, None, None, 1, int(raw))
        if not rows:
            raise NotFoundError(f"No job run {raw}.")
        return JSONResponse(rows[0])

    async def digests(request: Request) -> Response:
        def query() -> list[dict]:
            with engine.connect() as conn:
                return [
                    {"date": r.day.isoformat(), "built_at": r.built_at.isoformat(), "pdf": r.has_pdf,
                     "delivery": r.delivery, "links": [
                         {"href": f"/digest/{r.day.isoformat()}?f={f}", "type": MEDIA[f], "rel": "alternate"}
                         for f in ("html", "pdf", "json")]}
                    for r in conn.execute(text(
                        "SELECT day, built_at, pdf IS NOT NULL AS has_pdf, delivery FROM stored_digests "
                        "ORDER BY day DESC LIMIT 400"))
                ]

        rows = await run_in_threadpool(query)
        return Response(json.dumps({"digests": rows}, default=str), media_type="application/json")

    return [
        Route("/service/runs", guarded(runs)),
        Route("/service/runs/{run_id}", guarded(run)),
        Route("/service/digests", guarded(digests)),
    ]
