"""Errors of the API package: one root class, each also subclassing the matching builtin.

Every error carries one sentence for the user; the HTTP layer maps each class to a status
code (``STATUS``) and answers with an OGC exception body, never SQL or a traceback.
"""

from __future__ import annotations

from gis.errors import IocError


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


class ConfigError(ApiError, ValueError):
    """The API configuration cannot be built or is invalid."""


STATUS: dict[type[ApiError], int] = {
    InvalidParameterError: 400,
    NotFoundError: 404,
    AuthenticationError: 401,
    ConfigError: 500,
    ApiError: 500,
}


def status_of(error: ApiError) -> int:
    """HTTP status for an API error (the most specific class wins)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500
