"""A small HTTP server for a local mirror of news pages (tests, demo, benchmarks).

Serves a folder on 127.0.0.1 with a few special routes that real sites also produce:
``/__slow/<seconds>/...`` (a slow page), ``/__loop/<n>`` (endless redirects), ``/__big/<bytes>/...`` (an enormous page), ``/__error/<code>``
(an HTTP error). A ``.headers`` file next to a page (``name.html.headers``, lines
``Header: value``) overrides its response headers (e.g. a legacy charset). Never exposed
beyond the loopback interface. ``{{BASE}}`` in served text files becomes the server's base URL.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["LocalSite"]


class _Handler(SimpleHTTPRequestHandler):
    server_version = "ioc-localsite/1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    def log_request(self, code="-", size="-") -> None:
        self.server.hits.append(getattr(self, "original_path", self.path))  # type: ignore[attr-defined]

    def _special(self) -> bool:
        self.original_path = self.path
        m = re.match(r"^/__slow/([\d.]+)(/.*)$", self.path)
        if m:
            time.sleep(float(m.group(1)))
            self.path = m.group(2)
            return False
        m = re.match(r"^/__big/(\d+)/", self.path)
        if m:
            size = int(m.group(1))
            chunk = "<p>Trang khổng lồ lặp lại một câu rất nhiều lần.</p>\n".encode() * 1000
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            sent = 0
            try:
                while sent < size:
                    part = chunk[: size - sent]
                    self.wfile.write(part)
                    sent += len(part)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return True
        m = re.match(r"^/__loop/(\d+)", self.path)
        if m:
            self.send_response(302)
            self.send_header("Location", f"/__loop/{int(m.group(1)) + 1}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        m = re.match(r"^/__error/(\d{3})", self.path)
        if m:
            body = b"<html><body><h1>Server error</h1></body></html>"
            self.send_response(int(m.group(1)))
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return True
        return False

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self._special():
            return
        path = Path(self.translate_path(self.path))
        headers_file = path.with_name(path.name + ".headers")
        if path.is_file() and headers_file.is_file():
            body = path.read_bytes()
            self.send_response(200)
            for line in headers_file.read_text().splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    self.send_header(k.strip(), v.strip())
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path.is_file() and path.suffix in (".xml", ".html", ".txt", ".rss"):
            body = path.read_bytes().replace(b"{{BASE}}", self.server.base.encode())  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def guess_type(self, path):  # type: ignore[override]
        p = str(path)
        if p.endswith((".xml", ".rss")):
            return "application/xml"
        if p.endswith((".html", ".htm")):
            return "text/html; charset=utf-8"
        return super().guess_type(path)


class LocalSite:
    """Serve ``root`` on 127.0.0.1 (a free port unless given) in a background thread.

    >>> with LocalSite(Path(".")) as site:  # doctest: +SKIP
    ...     site.url("/rss.xml")
    """

    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = Path(root)
        handler = lambda *a, **k: _Handler(*a, directory=str(self.root), **k)  # noqa: E731
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.httpd.hits = []  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.httpd.base = self.base  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hits(self) -> list[str]:
        return self.httpd.hits  # type: ignore[attr-defined]

    def url(self, path: str = "/") -> str:
        return self.base + path

    def start(self) -> LocalSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LocalSite:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
