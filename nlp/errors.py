"""Errors of the nlp package: one root class, each also a matching builtin."""

from __future__ import annotations


class NLPError(Exception):
    """Root of every error raised by :mod:`nlp`."""


NlpError = NLPError  # the name ioc.cli looks up for one-line user errors


class ModelNotFoundError(NLPError, FileNotFoundError):
    """A sentiment model file or registry entry does not exist."""


class ModelLoadError(NLPError, ValueError):
    """A model file exists but cannot be loaded (corrupt, wrong format or library version)."""


class DataNotFoundError(NLPError, FileNotFoundError):
    """A training or evaluation data set is missing from the data directory."""


class GazetteerError(NLPError, ValueError):
    """The gazetteer file is missing or malformed."""


class InputError(NLPError, ValueError):
    """An input record or line cannot be scored (malformed JSON, missing text...)."""


class ItemNotFoundError(InputError, LookupError):
    """A label correction names an article or a post that does not exist."""


class ArticleNotFoundError(ItemNotFoundError):
    """A label correction names an article that does not exist."""


class PostNotFoundError(ItemNotFoundError):
    """A label correction names a citizen's post that does not exist."""
