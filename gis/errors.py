"""Errors of the land-monitoring core.

Every error carries one sentence meant for the user; the CLI prints it and exits non-zero.
Like rasterio, each class also subclasses the matching builtin so callers may catch either.
"""

from __future__ import annotations


class IocError(Exception):
    """Root of the project's user-facing errors (message = one clear sentence)."""


class ConfigurationError(IocError, ValueError):
    """A setting is missing or wrong."""


class DatabaseError(IocError, RuntimeError):
    """The database cannot be reached, started or migrated."""


class InputFileError(IocError, ValueError):
    """An input file (vector, raster, table) is unreadable, empty or invalid."""


class CRSError(InputFileError):
    """A coordinate reference system is unknown or cannot be aligned."""


class GeometryError(InputFileError):
    """Geometries are invalid and cannot be repaired."""
