"""The HTML pages' browser libraries, served by the API itself instead of public CDNs.

pygeoapi's templates load Leaflet, Leaflet.markercluster, Bootstrap's CSS and Swagger UI from
unpkg and cdnjs. An operations centre's network often has no route to them (a government data
network, a firewall, these sandboxes), and then every collection page shows an empty map. The
same libraries ship in Python packages (XStatic-Leaflet, XStatic-Leaflet-MarkerCluster,
Bootstrap-Flask, swagger-ui-bundle): they are mounted under ``/vendor`` and a middleware rewrites
the CDN addresses in HTML responses to point there.

Versions differ a little from the templates' (Leaflet 1.9.3 for 1.3.1, Bootstrap 5.3 for 5.1,
Swagger UI 4.15 for "latest"); the pages only use the long-stable parts of these APIs. Pages
needing libraries no package ships (Leaflet.VectorGrid on the tiles page, ReDoc, AsyncAPI, the
coverage viewer) still load them from the CDN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

VENDOR = "/vendor"


@dataclass(frozen=True)
class Library:
    name: str  # path segment under /vendor
    directory: Path
    cdn: dict[str, str]  # CDN URL -> file path inside ``directory``


def libraries() -> list[Library]:
    import flask_bootstrap
    import swagger_ui_bundle
    import xstatic.pkg.leaflet as leaflet
    import xstatic.pkg.leaflet_markercluster as markercluster

    cluster = "https://unpkg.com/leaflet.markercluster/dist/"
    swagger = "https://unpkg.com/swagger-ui-dist/"
    return [
        Library(
            "leaflet",
            Path(leaflet.BASE_DIR),
            {
                "https://unpkg.com/leaflet@1.3.1/dist/leaflet.css": "leaflet.css",
                "https://unpkg.com/leaflet@1.3.1/dist/leaflet.js": "leaflet.js",
                "https://cdnjs.cloudflare.com/ajax/libs/leaflet/1.3.1/leaflet.js": "leaflet.js",
            },
        ),
        Library(
            "leaflet.markercluster",
            Path(markercluster.BASE_DIR),
            {
                cluster + name: name
                for name in (
                    "MarkerCluster.css",
                    "MarkerCluster.Default.css",
                    "leaflet.markercluster-src.js",
                )
            },
        ),
        Library(
            "bootstrap",
            Path(flask_bootstrap.__file__).parent / "static" / "bootstrap5",
            {
                "https://unpkg.com/bootstrap@5.1.3/dist/css/bootstrap.min.css": "css/bootstrap.min.css",
            },
        ),
        Library(
            "swagger-ui",
            Path(swagger_ui_bundle.swagger_ui_path),
            {
                swagger + name: name
                for name in (
                    "swagger-ui-bundle.js",
                    "swagger-ui-standalone-preset.js",
                    "swagger-ui.css",
                )
            },
        ),
    ]


def vendor_mounts(libs: list[Library]) -> list[Mount]:
    return [
        Mount(f"{VENDOR}/{lib.name}", StaticFiles(directory=str(lib.directory))) for lib in libs
    ]


def rewrites(libs: list[Library], base_url: str) -> list[tuple[bytes, bytes]]:
    """(CDN URL, local URL) pairs, longest first so no URL is rewritten inside another."""
    base = base_url.rstrip("/")
    pairs = [
        (url.encode(), f"{base}{VENDOR}/{lib.name}/{path}".encode())
        for lib in libs
        for url, path in lib.cdn.items()
    ]
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


class LocalAssetsMiddleware:
    """Rewrite the known CDN URLs in ``text/html`` responses (other responses pass untouched)."""

    def __init__(self, app: ASGIApp, pairs: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.pairs = pairs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_rewritten(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                ctype = MutableHeaders(raw=message["headers"]).get("content-type", "")
                if ctype.startswith("text/html"):
                    start = message  # held until the whole body is here
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                for old, new in self.pairs:
                    body = body.replace(old, new)
                headers = MutableHeaders(raw=list(start["headers"]))
                headers["content-length"] = str(len(body))
                await send({**start, "headers": headers.raw})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_rewritten)
