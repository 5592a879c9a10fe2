"""Errors of the land-monitoring core.

Every error carries one sentence meant for the user; the CLI prints it and exits with the
class's ``exit_code``: 2 for a user error (bad file, bad argument, bad setting), 1 for other
failures (the database cannot be reached). Like rasterio, each class also subclasses the
matching builtin so callers may catch either.
"""

from __future__ import annotations


class IocError(Exception):
    """Root of the project's user-facing errors (message = one clear sentence)."""

    #: process exit status of the ``ioc`` command for this error: 2 = user error
    exit_code: int = 2


class ConfigurationError(IocError, ValueError):
    """A setting is missing or wrong."""


class DatabaseError(IocError, RuntimeError):
    """The database cannot be reached, started or migrated (not the user's input: exit 1)."""

    exit_code = 1


class DatabaseSettingError(DatabaseError, ConfigurationError):
    """The database cannot be used because of a setting (a port in use, a state folder that is
    not writable, a URL that is not postgresql://): the user's to fix, exit 2."""

    exit_code = 2


class InputFileError(IocError, ValueError):
    """An input file (vector, raster, table) is unreadable, empty or invalid."""


class CRSError(InputFileError):
    """A coordinate reference system is unknown or cannot be aligned."""


class GeometryError(InputFileError):
    """Geometries are invalid and cannot be repaired."""


class InvalidValueError(IocError, ValueError):
    """A value given by the user (an argument, a field of a request) is not allowed."""


class RecordNotFoundError(IocError, LookupError):
    """A record named by the user (a parcel alert id, ...) does not exist."""
