"""The HTML pages as a person in a browser sees them (issue 12 item 9): a title on every page,
item tables that stay inside the page with one-line rows, and a map base layer that needs no
internet."""

from __future__ import annotations

import html as html_lib
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.postgis

PAGES = [
    "/",
    "/collections",
    "/collections/parcels",
    "/collections/parcels/items",
    "/collections/parcels/items/1",
    "/collections/parcels/queryables",
    "/collections/articles/items",
    "/collections/articles/items/1",
    "/conformance",
    "/processes",
    "/processes/daily-digest",
    "/TileMatrixSets",
    "/collections/parcels/tiles",
    "/jobs",
]


def title_of(html: str) -> str:
    found = re.findall(r"<title>(.*?)</title>", html, re.S)
    assert len(found) == 1, found
    return re.sub(r"\s+", " ", found[0]).strip()


@pytest.mark.parametrize("path", PAGES)
def test_every_html_page_has_a_title(client, path):
    r = client.get(path, params={"f": "html"})
    assert r.status_code == 200, r.text[:300]
    title = title_of(r.text)
    assert len(title) > 3 and title != "-", title
    if not path.startswith("/TileMatrixSets"):  # pygeoapi renders these two without our templates
        assert "giám sát đất đai" in title or "monitoring" in title  # the site's name, at least


def test_item_pages_are_titled_by_collection(client):
    vi = title_of(client.get("/collections/parcels/items?f=html&lang=vi").text)
    assert vi.startswith("Thửa đất địa chính")
    en = title_of(client.get("/collections/land-changes/items?f=html&lang=en").text)
    assert en.startswith("Land-cover changes")


def test_item_tables_keep_one_line_rows_inside_the_page(client):
    html = client.get("/collections/articles/items?f=html&limit=20").text
    assert 'class="col-sm-12 ioc-table-wrap"' in html  # scrolls inside the page
    table = html[
        html.index('<table class="table table-sm table-striped table-bordered ioc-items">') :
    ]
    table = table[: table.index("</table>")]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", table, re.S)
    assert len(cells) >= 20 * 5
    for cell in cells:
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
        assert len(text) <= 40, text  # long values cut (shown whole in the title attribute)
        assert text != "None"  # empty, not Python's None
    css = html[html.index("<style>") : html.index("</style>")]
    assert "white-space: nowrap" in css and "text-overflow: ellipsis" in css
    assert "overflow-x: auto" in css


@pytest.mark.chromium
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
@pytest.mark.parametrize(
    "path",
    [
        "/collections/parcels/items?f=html&limit=20",
        "/collections/parcel-alerts?f=html",
        "/collections/articles/items/1?f=html",
    ],
)
def test_maps_have_a_base_layer_without_internet(server, tmp_path, path):
    # every host but the API unreachable: OpenStreetMap's tiles cannot load, so the base layer
    # must come from the API itself (the administrative units' outlines, under the features)
    out = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            f"{server}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = out.stdout
    assert "leaflet-container" in dom, out.stderr[-2000:]
    assert "leaflet-tile-loaded" not in dom  # no tile came from the internet
    pane = re.search(r'class="leaflet-pane leaflet-iocBase-pane"(.*?)</svg>', dom, re.S)
    assert pane is not None, "no base-layer pane"
    assert len(re.findall(r"<path ", pane.group(1))) >= 1
