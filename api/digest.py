"""Serving the daily digest built by :mod:`nlp.digest` (html, json or pdf)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from sqlalchemy import Engine

from api.errors import ApiError, NotFoundError


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def render_digest(engine: Engine, day: dt.date, fmt: str, base_url: str = "") -> tuple[bytes, str]:
    """(content, media type) of the digest of ``day``; ``fmt`` is html, json or pdf."""
    try:
        from nlp import digest as nlp_digest
    except ImportError as exc:
        raise ApiError("The daily digest is not available on this server (nlp.digest is missing).") from exc
    with engine.connect() as conn:
        digest = nlp_digest.build_digest(conn, day)
    if digest is None:
        raise NotFoundError(f"No digest for {day.isoformat()}.")
    if fmt == "json":
        payload = _jsonable(digest)
        return json.dumps(payload, ensure_ascii=False, default=_jsonable).encode(), "application/json"
    if fmt == "pdf":
        render_pdf = getattr(nlp_digest, "render_pdf", None)
        if render_pdf is None:
            raise ApiError("PDF digests are not available on this server.")
        data = render_pdf(digest)
        return (data if isinstance(data, bytes) else bytes(data)), "application/pdf"
    html = nlp_digest.render_html(digest, **_html_kwargs(nlp_digest.render_html, base_url))
    return html.encode("utf-8"), "text/html; charset=utf-8"


def _html_kwargs(fn, base_url: str) -> dict:
    import inspect

    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    for name in ("feedback_url", "feedback_endpoint"):
        if name in params:
            kwargs[name] = f"{base_url}/digest/feedback"
    if "base_url" in params:
        kwargs["base_url"] = base_url
    return kwargs
