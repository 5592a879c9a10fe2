"""Real servers on 127.0.0.1 for the imagery-intake tests (never mocks).

* ``cog_server``: a ThreadingHTTPServer serving a temporary folder of COGs, honouring single
  ``Range`` requests (206) and logging each request (path, range, status, bytes sent);
* ``stac_api``: stac-fastapi-pgstac (uvicorn, from the separate ``.venv-stac`` that
  ``make stac-server`` creates) over a pgstac database made with ``pypgstac migrate`` in the
  tests' throwaway PostgreSQL cluster; ``load`` puts a collection and its items in it with
  ``pypgstac load``;
* ``fault_server``: a local HTTP server that answers 500, or answers too late (time-out), or
  answers 503 a few times and then forwards to the real STAC API.

COGs are made at test time from the shared OSCD images (never copied into the repository) and
from the shipped demo scenes, with GDAL's COG driver.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO = Path(__file__).resolve().parents[3]
STAC_VENV = Path(os.environ.get("IOC_STAC_VENV", REPO / ".venv-stac"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a static file server honouring Range requests ------------------------------------------


@dataclass
class Logged:
    method: str
    path: str
    range: str | None
    status: int
    sent: int


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files with single byte ranges (``bytes=a-b``, ``a-``, ``-n``) as 206."""

    log_list: list[Logged]
    lock: threading.Lock

    def log_message(self, *args) -> None:  # quiet
        pass

    def _record(self, status: int, sent: int) -> None:
        with self.lock:
            self.log_list.append(
                Logged(self.command, self.path, self.headers.get("Range"), status, sent)
            )

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "not found")
            self._record(404, 0)
            return
        size = path.stat().st_size
        rng = self.headers.get("Range")
        start, end, status = 0, size - 1, 200
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(size - int(m.group(2)), 0), size - 1
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._record(416, 0)
                return
            status = 206
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        sent = 0
        if not head:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(length)
            self.wfile.write(data)
            sent = len(data)
        self._record(status, sent)


@dataclass
class CogServer:
    root: Path
    url: str
    log: list[Logged] = field(default_factory=list)

    def requests_for(self, fragment: str) -> list[Logged]:
        return [r for r in self.log if fragment in r.path]

    def clear(self) -> None:
        self.log.clear()


@pytest.fixture(scope="session")
def cog_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("cogs")
    log: list[Logged] = []
    lock = threading.Lock()

    cls = type("H", (RangeHandler,), {"log_list": log, "lock": lock})

    def factory(*a, **k):
        return cls(*a, directory=str(root), **k)

    server = ThreadingHTTPServer(("127.0.0.1", 0), factory)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield CogServer(root, f"http://127.0.0.1:{server.server_address[1]}", log)
    finally:
        server.shutdown()
        server.server_close()


# --- stac-fastapi-pgstac over the tests' PostgreSQL -------------------------------------------


def _stac_unavailable(request, reason: str):
    if request.config.getoption("--require-db"):
        pytest.fail(f"STAC test server required but unavailable: {reason}", pytrace=False)
    pytest.skip(f"no STAC test server: {reason}")


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class StacApi:
    url: str
    dsn: str
    work: Path

    def load(self, collection: dict, items: list[dict]) -> None:
        """Put a collection and its items into pgstac with ``pypgstac load`` (upsert)."""
        cfile = self.work / f"{collection['id']}.collection.json"
        ifile = self.work / f"{collection['id']}.items.ndjson"
        cfile.write_text(json.dumps(collection))
        ifile.write_text("\n".join(json.dumps(i) for i in items) + "\n")
        exe = str(STAC_VENV / "bin" / "pypgstac")
        for kind, f in (("collections", cfile), ("items", ifile)):
            r = subprocess.run(
                [exe, "load", kind, str(f), "--dsn", self.dsn, "--method", "upsert"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert r.returncode == 0, r.stderr[-2000:]


@pytest.fixture(scope="session")
def stac_api(request, database_url, tmp_path_factory):
    """stac-fastapi-pgstac on 127.0.0.1 over a pgstac database of the test cluster."""
    uvicorn = STAC_VENV / "bin" / "uvicorn"
    pypgstac = STAC_VENV / "bin" / "pypgstac"
    if not (uvicorn.exists() and pypgstac.exists()):
        _stac_unavailable(
            request, f"{STAC_VENV} has no stac-fastapi-pgstac/pypgstac (run `make stac-server`)"
        )
    import psycopg

    name = "ioc_test_pgstac"
    admin = _with_db(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_db(database_url, name)
    r = subprocess.run(
        [str(pypgstac), "migrate", "--dsn", dsn], capture_output=True, text=True, timeout=300
    )
    if r.returncode != 0:
        _stac_unavailable(request, f"pypgstac migrate failed: {r.stderr[-1500:]}")
    parts = urlsplit(dsn)
    port = _free_port()
    env = {
        **os.environ,
        "PGUSER": parts.username or "",
        "PGPASSWORD": parts.password or "",
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "PGDATABASE": name,
        "DB_MIN_CONN_SIZE": "1",
        "DB_MAX_CONN_SIZE": "4",
        "WEB_CONCURRENCY": "1",
        "STAC_FASTAPI_TITLE": "ioc-monitor test catalogue",
        "STAC_FASTAPI_DESCRIPTION": "intake tests",
        "STAC_FASTAPI_LANDING_ID": "ioc-test",
        "STAC_FASTAPI_VERSION": "test",
    }
    work = tmp_path_factory.mktemp("stac")
    logf = open(work / "uvicorn.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(uvicorn),
            "stac_fastapi.pgstac.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=logf,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            logf.close()
            _stac_unavailable(
                request,
                "stac-fastapi-pgstac did not start: " + (work / "uvicorn.log").read_text()[-1500:],
            )
        time.sleep(0.3)
    try:
        yield StacApi(url, dsn, work)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- faulty catalogues ---------------------------------------------------------------------


class FaultHandler(BaseHTTPRequestHandler):
    """``mode``: 'error' (always 500), 'slow' (answers after ``delay`` s), 'flaky' (503 for the
    first ``failures`` requests, then forwards to ``upstream``)."""

    mode: str
    delay: float
    failures: int
    upstream: str
    state: dict
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _answer(self, status: int, body: bytes, ctype="application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        with self.state["lock"]:
            self.state["count"] += 1
            n = self.state["count"]
        if self.mode == "error":
            self._answer(500, b'{"code":"InternalError","description":"database is down"}')
            return
        if self.mode == "slow":
            self.state["stop"].wait(self.delay)
            try:
                self._answer(200, b"{}")
            except OSError:
                pass
            return
        if n <= self.failures:
            self._answer(503, b'{"code":"Unavailable","description":"try again"}')
            return
        req = urllib.request.Request(
            self.upstream + self.path,
            data=body or None,
            method=self.command,
            headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = resp.read()
            # links point at the upstream: rewrite them to this proxy
            data = data.replace(self.upstream.encode(), self.state["self_url"].encode())
            self._answer(resp.status, data, resp.headers.get("Content-Type", "application/json"))

    do_GET = _handle
    do_POST = _handle
    do_HEAD = _handle


@dataclass
class FaultServer:
    url: str
    state: dict

    @property
    def requests(self) -> int:
        return self.state["count"]


@pytest.fixture
def fault_server():
    servers = []

    def start(mode: str, delay: float = 0.0, failures: int = 0, upstream: str = "") -> FaultServer:
        state = {"count": 0, "lock": threading.Lock(), "stop": threading.Event()}
        cls = type(
            "F",
            (FaultHandler,),
            {
                "mode": mode,
                "delay": delay,
                "failures": failures,
                "upstream": upstream,
                "state": state,
            },
        )
        server = ThreadingHTTPServer(("127.0.0.1", 0), cls)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        state["self_url"] = url
        servers.append((server, state))
        return FaultServer(url, state)

    yield start
    for server, state in servers:
        state["stop"].set()
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Requests to 127.0.0.1 never go through a proxy configured in the environment."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
