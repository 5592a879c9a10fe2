"""Structured logs (ioc/logging.py): JSON lines with run/request ids, text format, settings."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading

import pytest

from api.context import REQUEST_ID
from ioc.logging import configure_logging, current_ids, run_context, uvicorn_log_config
from tests.conftest import REPO


@pytest.fixture
def capture():
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handlers = []

    def install(fmt: str, level_name: str = "INFO") -> io.StringIO:
        handlers.append(configure_logging(fmt, level_name, stream=stream))
        return stream

    yield install
    for h in handlers:
        root.removeHandler(h)
    root.setLevel(level)


def test_json_lines_carry_the_run_id(capture):
    stream = capture("json")
    log = logging.getLogger("ioc.test")
    with run_context(812, job="digest"):
        log.info("built the digest of %s", "2026-03-10", extra={"articles": 12})
        seen_in_thread = []
        t = threading.Thread(target=lambda: seen_in_thread.append(current_ids()))
        t.start()
        t.join()
    log.warning("after the run: Bản tin\nline two")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert len(lines) == 3  # one line per record, newlines escaped
    first, second, third = lines
    assert first["message"] == "built the digest of 2026-03-10" and first["level"] == "INFO"
    assert first["logger"] == "ioc.test" and first["run_id"] == "812" and first["job"] == "digest"
    assert first["articles"] == 12 and first["time"].endswith("Z")
    assert "run_id" not in second and second["message"] == "after the run: Bản tin\nline two"
    assert third["exception"].startswith("Traceback") and "ValueError: boom" in third["exception"]
    assert seen_in_thread == [{}]  # a new thread starts without the run's context


def test_text_format_tags_the_ids(capture):
    stream = capture("text")
    token = REQUEST_ID.set("req-9")
    try:
        logging.getLogger("api.x").warning("slow query")
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("api.x").info("plain")
    out = stream.getvalue().splitlines()
    assert out[0].endswith("WARNING api.x: slow query [request_id=req-9]")
    assert out[1].endswith("INFO api.x: plain")


def test_bad_settings_are_one_clear_error(monkeypatch):
    from gis.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="IOC_LOG_LEVEL must be"):
        configure_logging("json", "LOUD", stream=io.StringIO())
    monkeypatch.setenv("IOC_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="IOC_LOG_FORMAT must be 'text' or 'json'"):
        configure_logging()
    env = {**os.environ, "IOC_LOG_FORMAT": "xml"}
    done = subprocess.run(
        [sys.executable, "-m", "ioc.cli", "db", "url"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: IOC_LOG_FORMAT must be 'text' or 'json'."
    ]


def test_uvicorn_config_routes_every_record_through_the_ioc_handler():
    import logging.config

    cfg = uvicorn_log_config("json", "INFO")
    assert cfg["formatters"]["ioc"]["()"] == "ioc.logging.JsonFormatter"
    assert cfg["root"]["level"] == "INFO" and cfg["loggers"]["uvicorn.access"]["propagate"] is True
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    try:
        logging.config.dictConfig(cfg)  # what uvicorn does in each worker
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        root.setLevel(level)
