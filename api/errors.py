"""Errors of the API and the ONE table that turns any exception into an HTTP answer.

Raise an :class:`ApiError` subclass with one sentence for the user; the app (every route,
including route groups added by other modules) answers with :func:`error_response`: the status
and OGC exception code of the first row of :data:`ERROR_TABLE` that matches the exception, and
an OGC API exception body ``{"code", "type", "description"}``. Descriptions never carry a stack
trace, SQL or an absolute server path (:func:`public_message` strips paths from any text that
reaches a client, process errors included).

>>> status_of(ForbiddenError("x"))
403
>>> public_message("'/work/main/data/README.md' not recognized as a supported file format.")
"'README.md' not recognized as a supported file format."
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass

import psycopg
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from gis.errors import IocError

LOGGER = logging.getLogger(__name__)


class ApiError(IocError):
    """Root of the API's user-facing errors."""

    code = "NoApplicableCode"


class InvalidParameterError(ApiError, ValueError):
    """A query parameter or request body is malformed or names something unknown."""

    code = "InvalidParameterValue"


class NotFoundError(ApiError, LookupError):
    """A collection, item, job or digest does not exist."""

    code = "NotFound"


class AuthenticationError(ApiError, PermissionError):
    """A write (or a protected read) came without a valid token."""

    code = "NotAuthorized"


class ForbiddenError(ApiError, PermissionError):
    """A valid token whose roles do not allow this operation."""

    code = "Forbidden"


class MethodNotAllowedError(ApiError):
    """The resource exists but does not accept this HTTP method (``allow`` lists those it does)."""

    code = "MethodNotAllowed"

    def __init__(self, message: str, allow: tuple[str, ...] = ("GET",)) -> None:
        super().__init__(message)
        self.allow = allow


class PayloadTooLargeError(ApiError):
    """The request body is larger than ``IOC_API_MAX_BODY_BYTES``."""

    code = "PayloadTooLarge"


class ServiceUnavailableError(ApiError):
    """The database is down or a query ran out of time."""

    code = "ServiceUnavailable"


class ConfigError(ApiError, ValueError):
    """The API configuration cannot be built or is invalid."""


@dataclass(frozen=True)
class ErrorRule:
    """One row of the table: exceptions of ``types`` answer ``status`` with ``code``; the
    description is ``message`` or, when None, the exception's own (sanitised) sentence."""

    types: tuple[type[BaseException], ...]
    status: int
    code: str | None = None  # None: the ApiError's own code
    message: str | None = None
    log: bool = False  # log the exception (a server-side problem), never send it


ERROR_TABLE: tuple[ErrorRule, ...] = (
    ErrorRule((AuthenticationError,), 401),
    ErrorRule((ForbiddenError,), 403),
    ErrorRule((InvalidParameterError,), 400),
    ErrorRule((NotFoundError,), 404),
    ErrorRule((MethodNotAllowedError,), 405),
    ErrorRule((PayloadTooLargeError,), 413),
    ErrorRule((ServiceUnavailableError,), 503),
    ErrorRule((ApiError,), 500, log=True),  # ConfigError and the root class: a server problem
    ErrorRule((HTTPException,), 0),  # routing: its own status (404 no route, 405 method)
    ErrorRule(
        (psycopg.errors.QueryCanceled,),
        503,
        "ServiceUnavailable",
        "The query took too long; narrow it with bbox, datetime or filter.",
    ),
    ErrorRule(
        (psycopg.errors.DataError, psycopg.errors.UndefinedFunction),
        400,
        "InvalidParameterValue",
        "The filter compares a property with a value of the wrong type or uses an "
        "operator the property does not support.",
    ),
    # every statement is ours: PostGIS refusing a value means the request's coordinates or
    # geometry (bbox, filter literal) are outside what the CRS or GeoJSON allows
    ErrorRule(
        (psycopg.errors.InternalError_, psycopg.errors.ExternalRoutineException),
        400,
        "InvalidParameterValue",
        "The request's coordinates or geometry cannot be used (outside the CRS's area "
        "or not valid GeoJSON).",
    ),
    ErrorRule(
        (psycopg.OperationalError,),
        503,
        "ServiceUnavailable",
        "The database is not reachable; try again later.",
        log=True,
    ),
    ErrorRule(
        (RecursionError,),
        400,
        "InvalidParameterValue",
        "The request is nested too deeply to be processed.",
        log=True,
    ),
)
_FALLBACK = ErrorRule((BaseException,), 500, "ServerError", "Internal server error.", log=True)


def rule_for(exc: BaseException) -> ErrorRule:
    """The first row of the table that matches ``exc`` (SQLAlchemy errors by their driver error)."""
    orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError wraps the psycopg error
    for candidate in (exc, orig) if isinstance(orig, BaseException) else (exc,):
        for rule in ERROR_TABLE:
            if isinstance(candidate, rule.types):
                return rule
    return _FALLBACK


def status_of(error: BaseException) -> int:
    """HTTP status for an exception (the first matching row of the table)."""
    rule = rule_for(error)
    if rule.status == 0:
        return int(getattr(error, "status_code", 500))
    return rule.status


# an absolute path (/a/b..., ~/a/..., C:\a\...): replaced by its last component when it
# starts at a folder that exists on this machine (so URL paths such as /collections/x stay)
_PATH = re.compile(r"(?<![\w:/.])(~|[A-Za-z]:)?((?:[/\\][\w.\-+@%]+){2,})[/\\]?")
_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b.+\b(FROM|INTO|SET|WHERE)\b", re.S)


@functools.cache
def _roots() -> frozenset[str]:
    try:
        return frozenset(os.listdir("/"))
    except OSError:
        return frozenset()


def _strip_path(match: re.Match) -> str:
    drive, path = match.group(1), match.group(2)
    parts = [p for p in re.split(r"[/\\]", path) if p]
    if drive or parts[0] in _roots():
        return parts[-1]
    return match.group(0)


def public_message(text: str, limit: int = 500) -> str:
    """``text`` fit for a client: first lines only, no server path, no SQL, no traceback."""
    text = str(text or "").strip()
    if "Traceback (most recent call last)" in text:
        text = text.split("Traceback (most recent call last)")[0].strip() or "Internal error."
    text = _PATH.sub(_strip_path, text)
    if _SQL.search(text):
        text = "The database refused the request."
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " ".join(lines[:3])[:limit]


def ogc_body(code: str, description: str) -> dict:
    return {"code": code, "type": code, "description": description}


def ogc_exception(
    status: int, code: str, description: str, headers: dict | None = None
) -> JSONResponse:
    """A JSON OGC API exception response."""
    return JSONResponse(
        ogc_body(code, public_message(description)), status_code=status, headers=headers
    )


def error_response(exc: BaseException, path: str = "") -> JSONResponse:
    """The HTTP answer to ``exc`` from the table: status, OGC code, one clean sentence."""
    rule = rule_for(exc)
    status = status_of(exc)
    headers: dict[str, str] = {}
    if rule.status == 0:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(status, "Error")
        if status == 404:
            description = f"No resource at {path[:120]}." if path else "Not found."
        elif status == 405:
            description = (
                f"This method is not allowed on {path[:120]}." if path else "Method not allowed."
            )
        else:
            description = str(getattr(exc, "detail", "") or "Error.")
        for key, value in (getattr(exc, "headers", None) or {}).items():
            headers[key] = value
        return ogc_exception(status, code, description, headers)
    if rule.log:
        if rule is _FALLBACK or rule.status >= 500 and rule.message is None:
            LOGGER.error("error answered with %s", status, exc_info=exc)
        else:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            LOGGER.error("%s: %s", type(exc).__name__, first)
    code = rule.code or getattr(exc, "code", "NoApplicableCode")
    description = rule.message or str(exc) or "Error."
    if status >= 500 and rule.message is None and not isinstance(exc, ApiError):
        description = "Internal server error."
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="ioc-monitor"'
    if isinstance(exc, MethodNotAllowedError):
        headers["Allow"] = ", ".join(exc.allow)
    return ogc_exception(status, code, description, headers)
