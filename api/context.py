"""Per-request context shared by the API's middleware and the log formatter.

``REQUEST_ID`` holds the id of the request being served (from its ``X-Request-ID`` header when
that is a sane token, else generated); the ``ioc`` log formatter (``ioc/logging.py``) writes it
on every line logged while the request is handled (:class:`api.metrics.ObservabilityMiddleware`
sets it).
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("ioc_request_id", default=None)
REQUEST_ID_HEADER = "x-request-id"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")


def request_id_from(value: str | None) -> str:
    """The client's id when it is a plain token of at most 128 characters, else a new one (a
    header with spaces, control characters or a huge value is not copied into logs).

    >>> request_id_from("abc-123"), len(request_id_from("bad id\\n"))
    ('abc-123', 32)
    """
    if value and _SANE.fullmatch(value):
        return value
    return uuid.uuid4().hex
