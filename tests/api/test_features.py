"""OGC API Features Parts 1-3 as a user (QGIS, GDAL, the IOC dashboard) would notice them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from pyproj import Transformer

from tests.api.conftest import count
from tests.api.seed import N_ALERTS, N_ARTICLES, N_PARCELS

pytestmark = pytest.mark.postgis

COLLECTIONS = (
    "admin-units",
    "parcels",
    "land-changes",
    "parcel-alerts",
    "articles",
    "commune-sentiment",
)


def assert_ogc_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert {"code", "description"} <= set(body)
    text = body["description"].lower()
    for word in words:
        assert word.lower() in text, body["description"]
    for leak in ("select ", "traceback", "psycopg", "sqlalchemy", ' from "', 'file "'):
        assert leak not in text, body["description"]
    return body


def harvest(client, url: str, limit: int = 100) -> list[dict]:
    features = []
    href = url + ("&" if "?" in url else "?") + f"limit={limit}"
    pages = 0
    while href:
        r = client.get(href)
        assert r.status_code == 200, r.text[:300]
        doc = r.json()
        features += doc["features"]
        nxt = [ln["href"] for ln in doc["links"] if ln["rel"] == "next"]
        href = nxt[0] if nxt else None
        pages += 1
        assert pages < 1000
    return features


def test_every_collection_is_published_with_both_languages(client):
    doc = client.get("/collections?f=json").json()
    ids = {c["id"] for c in doc["collections"]}
    assert set(COLLECTIONS) <= ids
    vi = client.get("/collections/parcels?f=json&lang=vi").json()
    en = client.get("/collections/parcels?f=json&lang=en").json()
    assert vi["title"] == "Thửa đất địa chính"
    assert en["title"] == "Cadastral parcels"
    assert "http://www.opengis.net/def/crs/EPSG/0/5897" in vi["crs"]
    assert vi["storageCrs"] == "http://www.opengis.net/def/crs/EPSG/0/5897"
    bbox = vi["extent"]["spatial"]["bbox"][0]
    assert 105.8 < bbox[0] < bbox[2] < 105.9 and 20.5 < bbox[1] < bbox[3] < 20.6


def test_conformance_declares_filter_classes_so_clients_push_filters(client):
    classes = client.get("/conformance").json()["conformsTo"]
    for suffix in (
        "features-3/1.0/conf/filter",
        "features-3/1.0/conf/features-filter",
        "cql2/1.0/conf/cql2-text",
        "cql2/1.0/conf/cql2-json",
        "features-2/1.0/conf/crs",
        "features-1/1.0/conf/geojson",
        "ogcapi-tiles-1/1.0/conf/mvt",
    ):
        assert any(c.endswith(suffix) for c in classes), suffix


def test_items_are_geojson_with_counts_and_links(client, api_engine):
    r = client.get("/collections/parcels/items?limit=50")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    assert doc["numberReturned"] == 50 == len(doc["features"])
    assert doc["numberMatched"] == count(api_engine, "SELECT count(*) FROM parcels") == N_PARCELS
    rels = {ln["rel"] for ln in doc["links"]}
    assert {"self", "next", "collection", "alternate"} <= rels
    f = doc["features"][0]
    assert f["geometry"]["type"] == "MultiPolygon"
    assert "owner_name" not in f["properties"]  # personal data is not published
    lon, lat = f["geometry"]["coordinates"][0][0][0]
    assert 105.8 < lon < 105.9 and 20.5 < lat < 20.6


def test_following_next_links_harvests_the_whole_collection(client, api_engine):
    features = harvest(client, "/collections/parcels/items", limit=97)
    ids = [f["id"] for f in features]
    assert len(ids) == len(set(ids)) == count(api_engine, "SELECT count(*) FROM parcels")


def test_keyset_cursor_page_equals_offset_page(client):
    first = client.get("/collections/parcels/items?limit=100&offset=300&skipGeometry=true").json()
    nxt = [ln["href"] for ln in first["links"] if ln["rel"] == "next"][0]
    assert "cursor=" in nxt
    by_cursor = client.get(nxt).json()
    by_offset = client.get(
        "/collections/parcels/items?limit=100&offset=400&skipGeometry=true"
    ).json()
    assert [f["id"] for f in by_cursor["features"]] == [f["id"] for f in by_offset["features"]]
    prev = [ln["href"] for ln in by_cursor["links"] if ln["rel"] == "prev"][0]
    assert "offset=300" in prev


def test_limit_is_clamped_to_the_maximum(client):
    doc = client.get("/collections/parcels/items?limit=100000&skipGeometry=true").json()
    assert doc["numberReturned"] == 1000
    default = client.get("/collections/parcels/items").json()
    assert default["numberReturned"] == 10


@pytest.mark.parametrize(
    "query, words",
    [
        ("foo=bar", ["unknown query parameter", "foo"]),
        ("bbox=1,2,3", ["bbox"]),
        ("bbox=a,b,c,d", ["bbox", "numbers"]),
        ("bbox=106,21,105,20", ["bbox"]),
        ("bbox=nan,1,2,3", ["finite"]),
        ("datetime=yesterday", ["datetime"]),
        ("datetime=2025-02-01/2025-01-01", ["datetime"]),
        ("crs=EPSG:9999", ["crs", "not supported"]),
        ("bbox=1,2,3,4&bbox-crs=urn:foo", ["bbox-crs"]),
        ("bbox-crs=EPSG:4326", ["bbox-crs", "without bbox"]),
        ("filter=land_use_code ==== 'LUC'", ["cql2"]),
        ("filter=owner_name = 'x'", ["unknown property", "owner_name"]),
        ("filter=nope > 3", ["unknown property", "nope"]),
        ("filter-lang=sql&filter=1=1", ["filter-lang"]),
        ("sortby=nope", ["sortby", "nope"]),
        ("sortby=id;DROP TABLE parcels", ["sortby"]),
        ("properties=area_m2,owner_name", ["properties", "owner_name"]),
        ("limit=0", ["limit"]),
        ("limit=ten", ["limit", "integer"]),
        ("offset=-5", ["offset"]),
        ("skipGeometry=maybe", ["skipgeometry"]),
        ("cursor=garbage", ["cursor"]),
        ("f=xml", ["f"]),
        ("limit=1&limit=2", ["more than once"]),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(client, query, words):
    assert_ogc_error(client.get(f"/collections/parcels/items?{query}"), 400, *words)


def test_unknown_collection_and_item_are_404(client):
    assert_ogc_error(client.get("/collections/nope/items"), 404, "nope")
    assert_ogc_error(client.get("/collections/parcels/items/99999999"), 404, "99999999")
    assert_ogc_error(client.get("/collections/parcels/items/abc"), 404)
    assert_ogc_error(client.get("/collections/parcels/items/1?foo=1"), 400, "foo")
    assert_ogc_error(client.get("/no/such/path"), 404)


def test_injection_attempts_change_nothing(client, api_engine):
    before = count(api_engine, "SELECT count(*) FROM parcels")
    r = client.get("/collections/parcels/items", params={"land_use_code": "LUC' OR '1'='1"})
    assert r.status_code == 200 and r.json()["numberReturned"] == 0
    r = client.get(
        "/collections/parcels/items",
        params={"filter": "land_use_code = 'LUC''; DROP TABLE parcels; --'"},
    )
    assert (r.status_code == 200 and r.json()["numberReturned"] == 0) or r.status_code == 400
    r = client.get("/collections/parcels/items", params={"filter": "area_m2 > 'abc'"})
    assert_ogc_error(r, 400, "wrong type")
    r = client.get("/collections/parcels/items", params={"filter": '"id; DROP TABLE parcels" = 1'})
    assert_ogc_error(r, 400, "unknown property")
    assert_ogc_error(client.get("/collections/parcels/items/1;DROP TABLE parcels"), 404)
    assert count(api_engine, "SELECT count(*) FROM parcels") == before


def test_equality_query_parameters_filter_on_the_server(client, api_engine):
    doc = client.get(
        "/collections/parcels/items?land_use_code=LUC&limit=1000&skipGeometry=true"
    ).json()
    expected = count(api_engine, "SELECT count(*) FROM parcels WHERE land_use_code = 'LUC'")
    assert doc["numberMatched"] == doc["numberReturned"] == expected
    assert {f["properties"]["land_use_code"] for f in doc["features"]} == {"LUC"}


def test_cql2_text_and_json_filters(client, api_engine):
    expected = count(
        api_engine,
        "SELECT count(*) FROM parcels WHERE land_use_code IN ('LUC','LUK') "
        "AND area_m2 > 500 AND commune_code = '13285'",
    )
    text_filter = "land_use_code IN ('LUC','LUK') AND area_m2 > 500 AND commune_code = '13285'"
    doc = client.get(
        "/collections/parcels/items", params={"filter": text_filter, "limit": 1000}
    ).json()
    assert doc["numberMatched"] == expected > 0
    cql_json = {
        "op": "and",
        "args": [
            {"op": "in", "args": [{"property": "land_use_code"}, ["LUC", "LUK"]]},
            {"op": ">", "args": [{"property": "area_m2"}, 500]},
            {"op": "=", "args": [{"property": "commune_code"}, "13285"]},
        ],
    }
    doc = client.get(
        "/collections/parcels/items",
        params={"filter": json.dumps(cql_json), "filter-lang": "cql2-json", "limit": 1000},
    ).json()
    assert doc["numberMatched"] == expected
    like = client.get("/collections/admin-units/items", params={"filter": "name LIKE 'Xã%'"}).json()
    assert like["numberMatched"] == 2


def test_spatial_filter_and_bbox_agree(client):
    bbox = "105.8500,20.5150,105.8560,20.5200"
    by_bbox = {
        f["id"]
        for f in harvest(client, f"/collections/parcels/items?bbox={bbox}&skipGeometry=true")
    }
    poly = "POLYGON((105.85 20.515, 105.856 20.515, 105.856 20.52, 105.85 20.52, 105.85 20.515))"
    by_filter = {
        f["id"]
        for f in harvest(
            client,
            f"/collections/parcels/items?filter=S_INTERSECTS(geometry,{poly})&skipGeometry=true",
        )
    }
    assert by_bbox and by_filter <= by_bbox
    assert len(by_filter) >= 0.8 * len(by_bbox)


def test_crs_output_and_bbox_crs(client):
    to_wgs = Transformer.from_crs(5897, 4326, always_xy=True)
    native = client.get(
        "/collections/parcels/items/1?crs=http://www.opengis.net/def/crs/EPSG/0/5897"
    )
    assert native.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/5897>"
    x, y = native.json()["geometry"]["coordinates"][0][0][0]
    assert 587000 < x < 590000 and 2269000 < y < 2272000
    crs84 = client.get("/collections/parcels/items/1").json()["geometry"]["coordinates"][0][0][0]
    lon, lat = to_wgs.transform(
        x, y
    )  # the pinned 7-parameter transformation (EPSG VN-2000 -> WGS 84 (2))
    assert abs(crs84[0] - lon) < 1e-6 and abs(crs84[1] - lat) < 1e-6
    latlon = client.get("/collections/parcels/items/1?crs=EPSG:4326").json()["geometry"][
        "coordinates"
    ][0][0][0]
    assert latlon == pytest.approx([crs84[1], crs84[0]], abs=1e-7)  # EPSG:4326 is latitude first
    utm = client.get("/collections/parcels/items/1?crs=EPSG:3405").json()["geometry"][
        "coordinates"
    ][0][0][0]
    assert 580000 < utm[0] < 595000 and abs(utm[0] - x) > 1  # same datum, k 0.9996 vs 0.9999
    merc = client.get("/collections/parcels/items/1?crs=EPSG:3857").json()["geometry"][
        "coordinates"
    ][0][0][0]
    assert merc[0] == pytest.approx(11784500, abs=5000)
    # the same box in three CRSs selects the same parcels
    x0, y0 = 588000, 2270000
    in_native = client.get(
        f"/collections/parcels/items?bbox={x0},{y0},{x0 + 200},{y0 + 200}"
        "&bbox-crs=EPSG:5897&skipGeometry=true&limit=1000"
    ).json()
    (lon0, lon1), (lat0, lat1) = zip(
        to_wgs.transform(x0, y0), to_wgs.transform(x0 + 200, y0 + 200), strict=True
    )
    in_latlon = client.get(
        f"/collections/parcels/items?bbox={lat0},{lon0},{lat1},{lon1}"
        "&bbox-crs=EPSG:4326&skipGeometry=true&limit=1000"
    ).json()
    assert in_native["numberMatched"] == in_latlon["numberMatched"] > 0


def test_datetime_sortby_properties(client, api_engine):
    doc = client.get("/collections/articles/items?datetime=2025-07-02/2025-07-03&limit=100").json()
    expected = count(
        api_engine,
        "SELECT count(*) FROM articles WHERE published_at >= '2025-07-02T00:00Z' "
        "AND published_at <= '2025-07-03T23:59:59.999999Z'",
    )
    assert doc["numberMatched"] == expected > 0
    doc = client.get(
        "/collections/parcels/items?sortby=-area_m2,id&properties=area_m2,land_use_code"
        "&skipGeometry=true&limit=20"
    ).json()
    areas = [f["properties"]["area_m2"] for f in doc["features"]]
    assert areas == sorted(areas, reverse=True)
    assert set(doc["features"][0]["properties"]) == {"area_m2", "land_use_code"}
    assert doc["features"][0]["geometry"] is None
    nxt = [ln["href"] for ln in doc["links"] if ln["rel"] == "next"][0]
    assert "offset=20" in nxt  # ordering not on the key: offset paging


def test_every_collection_serves_items_and_an_item(client, api_engine):
    expected = {
        "parcel-alerts": N_ALERTS,
        "articles": N_ARTICLES,
        "commune-sentiment": count(api_engine, "SELECT count(*) FROM api_commune_sentiment"),
    }
    for cid in COLLECTIONS:
        doc = client.get(f"/collections/{cid}/items?limit=1000").json()
        assert doc["numberReturned"] > 0, cid
        if cid in expected:
            assert doc["numberMatched"] == expected[cid], cid
        first = doc["features"][0]
        one = client.get(f"/collections/{cid}/items/{first['id']}")
        assert one.status_code == 200, (cid, one.text[:200])
        assert one.json()["id"] == first["id"]
    sentiment = client.get(
        "/collections/commune-sentiment/items?commune_code=13285&limit=100"
    ).json()
    for f in sentiment["features"]:
        p = f["properties"]
        assert p["articles"] == p["negative"] + p["neutral"] + p["positive"]
        assert -1 <= p["sentiment_index"] <= 1


def test_queryables_and_html(client):
    q = client.get("/collections/parcels/queryables?f=json").json()
    assert "land_use_code" in q["properties"] and "owner_name" not in q["properties"]
    html = client.get("/collections/parcels/items?f=html&limit=5")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert client.get("/collections/parcels/items/1?f=html").status_code == 200


def test_html_pages_load_their_libraries_from_the_api(client):
    # no CDN needed: Leaflet, marker clusters, Bootstrap and Swagger UI come from /vendor
    page = client.get("/collections/parcels/items?f=html&limit=5").text
    assert "unpkg.com/leaflet" not in page and "unpkg.com/bootstrap" not in page
    local = re.findall(r'(?:src|href)="https?://[^/"]+(/vendor/[^"]+)"', page)
    assert any(u.endswith("/leaflet.js") for u in local)
    assert any(u.endswith("/leaflet.markercluster-src.js") for u in local)
    swagger = client.get("/openapi?f=html").text
    local += re.findall(r'(?:src|href)="https?://[^/"]+(/vendor/[^"]+)"', swagger)
    assert any("swagger-ui-bundle.js" in u for u in local)
    for url in set(local):
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 500, url
    # JSON is left alone
    assert (
        client.get("/collections/parcels/items?f=json&limit=1").json()["type"]
        == "FeatureCollection"
    )


@pytest.mark.chromium
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_items_page_draws_its_map_without_internet(server, tmp_path):
    # headless Chromium with every host but the API's unreachable: the map must still draw
    # the parcels (Leaflet adds one interactive path per polygon)
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
            f"{server}/collections/parcels/items?f=html&limit=20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "leaflet-container" in out.stdout, out.stderr[-2000:]
    assert out.stdout.count("leaflet-interactive") >= 5


def test_vector_tiles(client):
    from api.sql import CollectionSQL  # noqa: F401 - import check

    meta = client.get("/collections/parcels/tiles?f=json")
    assert meta.status_code == 200
    lon, lat = Transformer.from_crs(5897, 4326, always_xy=True).transform(588300, 2270300)
    import math

    z = 14
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    r = client.get(f"/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt")
    assert (
        r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    )
    assert b"parcels" in r.content and len(r.content) > 1000
    empty = client.get("/collections/parcels/tiles/WebMercatorQuad/14/0/0?f=mvt")
    assert empty.status_code == 204
    assert_ogc_error(client.get("/collections/parcels/tiles/WebMercatorQuad/3/9/9"), 404)
    assert_ogc_error(client.get("/collections/articles/tiles/WebMercatorQuad/3/1/1"), 404)
    for cid in ("land-changes", "parcel-alerts", "admin-units"):
        r = client.get(f"/collections/{cid}/tiles/WebMercatorQuad/{z}/{y}/{x}")
        assert r.status_code in (200, 204), cid


def test_big_pages_are_streamed_row_by_row_with_the_same_content(client, api_engine, monkeypatch):
    import api.routes

    plain = client.get("/collections/parcels/items?limit=500&offset=100&sortby=-area_m2").json()
    monkeypatch.setattr(api.routes, "STREAM_ABOVE", 50)
    streamed = client.get("/collections/parcels/items?limit=500&offset=100&sortby=-area_m2").json()
    assert [f["id"] for f in streamed["features"]] == [f["id"] for f in plain["features"]]
    assert streamed["features"][0] == plain["features"][0]
    assert streamed["numberMatched"] == plain["numberMatched"] == N_PARCELS
    assert [ln["href"] for ln in streamed["links"] if ln["rel"] in ("next", "prev")] == [
        ln["href"] for ln in plain["links"] if ln["rel"] in ("next", "prev")
    ]
    ids = [
        f["id"] for f in harvest(client, "/collections/parcels/items?skipGeometry=true", limit=300)
    ]
    assert len(ids) == len(set(ids)) == count(api_engine, "SELECT count(*) FROM parcels")
    filtered = client.get("/collections/parcels/items?land_use_code=LUC&limit=1000").json()
    assert (
        filtered["numberMatched"]
        == filtered["numberReturned"]
        == count(api_engine, "SELECT count(*) FROM parcels WHERE land_use_code = 'LUC'")
    )
