"""Per-request context shared with logging: the request id (set by the API's middleware)."""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("ioc_request_id", default=None)
