"""Structured logs: one JSON object per line (``IOC_LOG_FORMAT=json``) or readable text (default).

Every line carries the id of what it belongs to, so an operator can follow one request or one
scheduled run through the log:

* ``request_id``: set by the API's middleware (:mod:`api.metrics`) from the request's
  ``X-Request-ID`` header or generated, and echoed in the response;
* ``run_id`` (and ``job``): set by :func:`run_context` around a scheduled job's work.

JSON lines have ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``, the
ids that are set, ``exception`` when there is a traceback, and any ``extra={...}`` fields the
caller passed. Settings: ``IOC_LOG_FORMAT`` (``text`` | ``json``), ``IOC_LOG_LEVEL`` (default
``WARNING`` for text, which keeps the command line quiet, and ``INFO`` for JSON).

Context variables do not cross into new threads by themselves: enter :func:`run_context` in the
thread that runs the job (APScheduler's executors call the job function there).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import IO, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.context import REQUEST_ID
from gis.errors import ConfigurationError

RUN_ID: ContextVar[str | None] = ContextVar("ioc_run_id", default=None)
JOB: ContextVar[str | None] = ContextVar("ioc_job", default=None)

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# attributes every LogRecord has; anything else came from ``extra=``
_RECORD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_HANDLER_MARK = "_ioc_handler"


class LogSettings(BaseSettings):
    """How the ``ioc`` processes log (env prefix ``IOC_LOG_``)."""

    model_config = SettingsConfigDict(env_prefix="IOC_LOG_", env_file=".env", extra="ignore")

    format: Literal["text", "json"] = Field(default="text", description="text (default) or json")
    level: str | None = Field(
        default=None,
        description="DEBUG, INFO, WARNING, ERROR; unset = WARNING for text, INFO for json",
    )


def current_ids() -> dict[str, str]:
    """The request/run ids of the current context (only those that are set)."""
    out = {}
    for name, var in (("request_id", REQUEST_ID), ("run_id", RUN_ID), ("job", JOB)):
        value = var.get()
        if value is not None:
            out[name] = value
    return out


@contextlib.contextmanager
def run_context(run_id: str | int, job: str | None = None) -> Iterator[str]:
    """Tag every log line written inside the block with ``run_id`` (and ``job``).

    >>> with run_context(42, job="crawl") as rid:
    ...     current_ids()
    {'run_id': '42', 'job': 'crawl'}
    >>> current_ids()
    {}
    """
    rid = str(run_id)
    tokens = [RUN_ID.set(rid)]
    if job is not None:
        tokens.append(JOB.set(job))
    try:
        yield rid
    finally:
        for var, token in zip((RUN_ID, JOB), tokens, strict=False):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current request/run ids onto each record (``record.request_id`` …)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_ids().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in current_ids().items():
            out[name] = getattr(record, name, value)
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message`` plus ``[request_id=… run_id=…]`` when set."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = current_ids()
        if ids:
            tag = " ".join(f"{k}={getattr(record, k, v)}" for k, v in ids.items())
            first, sep, rest = line.partition("\n")
            line = f"{first} [{tag}]{sep}{rest}"
        return line


def _formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure_logging(
    fmt: str | None = None, level: str | int | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """Install the ioc handler on the root logger (replacing one installed before).

    ``fmt`` and ``level`` default to ``IOC_LOG_FORMAT`` and ``IOC_LOG_LEVEL``.

    Raises
    ------
    ConfigurationError
        Unknown format or level (the message names the setting).
    """
    settings = None
    if fmt is None or level is None:
        try:
            settings = LogSettings()
        except Exception as exc:  # pydantic ValidationError: one sentence naming the setting
            raise ConfigurationError(
                "IOC_LOG_FORMAT must be 'text' or 'json'."
                if "format" in str(exc)
                else f"invalid IOC_LOG_* setting: {exc}"
            ) from None
    fmt = (fmt or settings.format).lower()
    if fmt not in FORMATS:
        raise ConfigurationError(f"IOC_LOG_FORMAT must be 'text' or 'json', got '{fmt[:40]}'.")
    level = level if level is not None else settings.level
    if level is None:
        level = "INFO" if fmt == "json" else "WARNING"
    if isinstance(level, str):
        number = logging.getLevelNamesMapping().get(level.upper())
        if number is None:
            raise ConfigurationError(
                f"IOC_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got '{level[:40]}'."
            )
        level = number
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(_formatter(fmt))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def logging_requested() -> bool:
    """True when ``IOC_LOG_FORMAT`` or ``IOC_LOG_LEVEL`` is set (environment or .env)."""
    import os

    if os.environ.get("IOC_LOG_FORMAT") or os.environ.get("IOC_LOG_LEVEL"):
        return True
    settings = LogSettings()
    return settings.format == "json" or settings.level is not None


def configure_from_environment() -> logging.Handler | None:
    """The ``ioc`` command's logging: JSON when ``IOC_LOG_FORMAT=json``; text when
    ``IOC_LOG_FORMAT=text`` or ``IOC_LOG_LEVEL`` is set; otherwise Python's default (warnings
    and errors as bare lines), so the command line reads as it always did."""
    return configure_logging() if logging_requested() else None


#: commands that serve or schedule: several processes share their metrics
SERVICE_COMMANDS = ("run", "serve")


def setup_observability(command: str | None, state_dir: Any) -> None:
    """Process-wide set-up of the ``ioc`` command, before anything else is imported: logging,
    and for the long-running commands (``ioc run``, ``ioc serve``) Prometheus' multiprocess
    mode in ``<state dir>/metrics/<pid>`` (inherited by uvicorn workers and crawl processes;
    folders of processes no longer alive are removed), unless ``PROMETHEUS_MULTIPROC_DIR`` is
    set already."""
    import os
    import shutil
    from pathlib import Path

    configure_from_environment()
    if command not in SERVICE_COMMANDS or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    root = Path(state_dir) / "metrics"
    from api.metrics import setup_multiprocess

    try:
        if root.is_dir():
            for child in root.iterdir():
                if child.name.isdigit() and not _alive(int(child.name)):
                    shutil.rmtree(child, ignore_errors=True)
        setup_multiprocess(root / str(os.getpid()))
    except OSError as exc:  # metrics of this process only; the service runs all the same
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        logging.getLogger(__name__).warning(
            "metrics cannot be shared between processes (%s: %s); /metrics shows the answering "
            "process only",
            root,
            exc.strerror or exc,
        )


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def uvicorn_log_config(fmt: str | None = None, level: str | None = None) -> dict[str, Any]:
    """A ``log_config`` for ``uvicorn.run`` so its worker processes log like the ``ioc``
    process: every record (uvicorn's, pygeoapi's, ours) through one ioc handler on the root."""
    settings = LogSettings() if fmt is None or level is None else None
    fmt = fmt or settings.format
    level = (
        level or (settings.level if settings else None) or ("INFO" if fmt == "json" else "WARNING")
    ).upper()
    formatter = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"()": f"{__name__}.TextFormatter"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"ioc": formatter},
        "filters": {"ids": {"()": f"{__name__}.ContextFilter"}},
        "handlers": {
            "ioc": {
                "class": "logging.StreamHandler",
                "formatter": "ioc",
                "filters": ["ids"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["ioc"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }
