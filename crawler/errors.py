"""Errors of the crawler. One root class; each also subclasses the matching builtin."""

from __future__ import annotations


class CrawlerError(Exception):
    """Root of the crawler's user-facing errors (message = one clear sentence)."""


class SitesFileError(CrawlerError, ValueError):
    """The sites file is unreadable or an entry in it is invalid."""


class ExtractionError(CrawlerError, ValueError):
    """A page could not be turned into an article (no body, unreadable bytes, ...)."""
