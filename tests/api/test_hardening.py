"""What the probe of issue 12 found in the API, each checked as a client would notice it: big
filters, invalid geometries, writes that are not allowed, oversized bodies, sortables, every
advertised CRS, and server paths in error messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import BEARER, count
from tests.api.test_features import assert_ogc_error

pytestmark = pytest.mark.postgis

REPO = Path(__file__).resolve().parents[2]
GEOMETRY_COLLECTIONS = ("admin-units", "parcels", "land-changes", "parcel-alerts")


# -- filter complexity (issue 12 item 6: ~500 OR terms gave 500) -------------------------------
def test_a_filter_with_500_or_terms_is_a_400_naming_the_limit(client):
    ors = " OR ".join(f"area_m2 = {i}" for i in range(500))
    body = assert_ogc_error(
        client.get("/collections/parcels/items", params={"filter": ors}),
        400,
        "too complex",
        "at most 1000",
    )
    assert "IN (" in body["description"]
    # a realistic complex filter is within the limits
    moderate = " OR ".join(
        f"(area_m2 > {i} AND (area_m2 < {i + 900} OR land_use_code = 'LUC'))" for i in range(20)
    )
    assert client.get("/collections/parcels/items", params={"filter": moderate}).status_code == 200
    deep = "area_m2 = 0"
    for i in range(40):  # alternating AND / OR, each one level deeper
        deep = f"area_m2 = {i} {'AND' if i % 2 else 'OR'} ({deep})"
    assert_ogc_error(
        client.get("/collections/parcels/items", params={"filter": deep}), 400, "nested", "levels"
    )


def test_long_or_chains_within_the_limit_compile_flat_and_answer_right(client, api_engine):
    # 200 terms: nested 200 deep, this overflowed Python's recursion when composing the SQL
    ors = " OR ".join(f"sheet_number = '{i}'" for i in range(1, 201))
    doc = client.get(
        "/collections/parcels/items", params={"filter": ors, "limit": 1, "skipGeometry": "true"}
    ).json()
    assert doc["numberMatched"] == count(
        api_engine, "SELECT count(*) FROM parcels WHERE sheet_number::int BETWEEN 1 AND 200"
    )


def test_filter_limits_are_settings(api_database_url, api_engine, settings):
    from starlette.testclient import TestClient

    from api.app import create_app

    small = settings.model_copy(update={"max_filter_nodes": 20})
    with TestClient(
        create_app(small, api_database_url, engine=api_engine), raise_server_exceptions=False
    ) as c:
        ors = " OR ".join(f"area_m2 = {i}" for i in range(6))  # 23 nodes
        assert_ogc_error(
            c.get("/collections/parcels/items", params={"filter": ors}), 400, "at most 20"
        )
        assert (
            c.get(
                "/collections/parcels/items", params={"filter": "area_m2 = 1 OR area_m2 = 2"}
            ).status_code
            == 200
        )


# -- invalid geometry literals (item 6: 200 with nothing instead of 400) ------------------------
@pytest.mark.parametrize(
    "geometry, words",
    [
        # a bow tie: the ring crosses itself
        (
            "POLYGON((105.85 20.515, 105.856 20.52, 105.856 20.515, 105.85 20.52, 105.85 20.515))",
            ["not a valid geometry", "self-intersection"],
        ),
        (
            "POLYGON((105.85 20.515, 105.856 20.515, 105.856 20.52, 105.85 20.52))",
            ["ring", "not closed"],
        ),
        ("POLYGON((105.85 20.515, 105.856 20.515, 105.85 20.515))", ["ring", "at least 4"]),
        ("POLYGON((0 0, 1 0, 1 1))", ["ring", "at least 4"]),  # was 200: shapely closed it silently
    ],
)
def test_an_invalid_polygon_in_a_spatial_filter_is_a_400(client, geometry, words):
    r = client.get(
        "/collections/parcels/items", params={"filter": f"S_INTERSECTS(geometry,{geometry})"}
    )
    assert_ogc_error(r, 400, *words)


def test_an_invalid_polygon_in_cql2_json_is_a_400(client):
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [
                [105.85, 20.515],
                [105.856, 20.52],
                [105.856, 20.515],
                [105.85, 20.52],
                [105.85, 20.515],
            ]
        ],
    }
    cql = {"op": "s_intersects", "args": [{"property": "geometry"}, bowtie]}
    r = client.get(
        "/collections/parcels/items", params={"filter": json.dumps(cql), "filter-lang": "cql2-json"}
    )
    assert_ogc_error(r, 400, "self-intersection")


# -- writes that are not allowed (item 6: POST on items with a token gave 500) -----------------
def test_creating_or_deleting_features_is_a_405_with_allow(client, api_engine):
    before = count(api_engine, "SELECT count(*) FROM parcels")
    r = client.post(
        "/collections/parcels/items",
        json={"type": "Feature", "geometry": None, "properties": {}},
        headers=BEARER,
    )
    assert_ogc_error(r, 405, "not supported")
    assert r.headers["allow"] == "GET"
    r = client.delete("/collections/parcel-alerts/items/1", headers=BEARER)
    assert_ogc_error(r, 405, "deleted")
    assert "PATCH" in r.headers["allow"]
    r = client.patch("/collections/parcels/items/1", json={"land_use_code": "ONT"}, headers=BEARER)
    assert_ogc_error(r, 405, "cannot be changed")
    assert_ogc_error(client.put("/collections/parcels/items", headers=BEARER), 405)
    assert count(api_engine, "SELECT count(*) FROM parcels") == before
    # and the OpenAPI document does not declare what is refused
    paths = client.get("/openapi?f=json").json()["paths"]
    assert "post" not in paths["/collections/parcels/items"]
    assert set(paths["/collections/parcels/items/{featureId}"]) == {"get"}
    assert "patch" in paths["/collections/parcel-alerts/items/{featureId}"]


# -- request size (item 6: a 30 MB body was accepted and echoed) -------------------------------
def test_an_oversized_body_is_a_413_before_the_app_reads_it(client, api_engine):
    jobs = count(api_engine, "SELECT count(*) FROM pygeoapi.jobs")
    big = {"inputs": {"records": [{"id": i, "text": "x" * 1000} for i in range(2000)]}}  # ~2 MB
    r = client.post("/processes/sentiment-scoring/execution", json=big, headers=BEARER)
    body = assert_ogc_error(r, 413, "larger than", "1,048,576")
    assert body["code"] == "PayloadTooLarge"
    assert count(api_engine, "SELECT count(*) FROM pygeoapi.jobs") == jobs
    # a body just under the limit still reaches the route (and is judged there)
    r = client.post(
        "/digest/feedback",
        content=b'{"article_id": 1, "note": "' + b"x" * 900_000 + b'"}',
        headers={**BEARER, "Content-Type": "application/json"},
    )
    assert r.status_code != 413


def test_a_streamed_body_without_content_length_is_counted(client):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MB, chunked: no Content-Length to trust

    r = client.post("/digest/feedback", content=chunks(), headers=BEARER)
    assert_ogc_error(r, 413, "larger than")


@pytest.mark.slow
def test_the_served_app_refuses_a_chunked_oversized_body(server):
    def chunks():
        for _ in range(64):
            yield b"{" * 65536

    r = httpx.post(
        f"{server}/processes/sentiment-scoring/execution",
        content=chunks(),
        headers={**BEARER, "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413 and r.json()["code"] == "PayloadTooLarge"
    # a lying Content-Length is no way around it either
    r = httpx.post(
        f"{server}/digest/feedback",
        content=b"{" * 3_000_000,
        headers={**BEARER, "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413


# -- sortables (item 7: declared in /conformance, but 404) -------------------------------------
def test_sortables_are_served_for_every_collection_and_sortby_honours_them(client):
    classes = client.get("/conformance").json()["conformsTo"]
    assert any(c.endswith("ogcapi-features-5/1.0/conf/sortables") for c in classes)
    for cid in (
        "admin-units",
        "parcels",
        "land-changes",
        "parcel-alerts",
        "articles",
        "commune-sentiment",
    ):
        r = client.get(f"/collections/{cid}/sortables")
        assert r.status_code == 200, (cid, r.text[:200])
        assert r.headers["content-type"].startswith("application/schema+json")
        doc = r.json()
        assert doc["type"] == "object" and doc["$id"].endswith(f"/collections/{cid}/sortables")
        assert "id" in doc["properties"]
        for name, schema in doc["properties"].items():
            assert schema["type"] != "object", (cid, name)
            for direction in ("", "-"):
                page = client.get(
                    f"/collections/{cid}/items",
                    params={"sortby": f"{direction}{name}", "limit": 50, "skipGeometry": "true"},
                )
                assert page.status_code == 200, (cid, name, page.text[:200])
                values = [
                    f["id"] if name == "id" else f["properties"][name]
                    for f in page.json()["features"]
                ]
                present = [v for v in values if v is not None]
                if direction == "-":
                    assert present == sorted(present, reverse=True), (cid, name)
                else:
                    assert present == sorted(present), (cid, name)
    parcels = client.get("/collections/parcels/sortables").json()["properties"]
    assert parcels["area_m2"]["type"] == "number" and "owner_name" not in parcels
    assert_ogc_error(client.get("/collections/nope/sortables"), 404)
    assert_ogc_error(client.get("/collections/parcels/items?sortby=owner_name"), 400, "sortables")
    assert "/collections/parcels/sortables" in client.get("/openapi?f=json").json()["paths"]


# -- every advertised CRS works (item 7: EPSG:9209 listed but refused) --------------------------
def _first_position(geometry: dict) -> list[float]:
    coords = geometry["coordinates"]
    while isinstance(coords[0], list):
        coords = coords[0]
    return coords


def test_every_advertised_crs_of_every_collection_works_for_output_and_bbox(client):
    from gis.crs import make_transformer

    tried = 0
    for cid in GEOMETRY_COLLECTIONS:
        advertised = client.get(f"/collections/{cid}?f=json").json()["crs"]
        assert any(u.endswith("/9209") for u in advertised)
        reference = client.get(f"/collections/{cid}/items?limit=1").json()["features"][0]
        lon, lat = _first_position(reference["geometry"])
        for uri in advertised:
            code = "CRS84" if uri.endswith("CRS84") else uri.rsplit("/", 1)[-1]
            r = client.get(f"/collections/{cid}/items/{reference['id']}", params={"crs": uri})
            assert r.status_code == 200, (cid, uri, r.text[:200])
            assert r.headers["content-crs"] == f"<{uri}>"
            x, y = _first_position(r.json()["geometry"])
            if code == "CRS84":
                ex, ey, tol = lon, lat, 1e-7
            elif code == "4326":
                ex, ey, tol = lat, lon, 1e-7  # latitude first
            else:
                ex, ey = make_transformer(4326, int(code)).transform(
                    lon, lat
                )  # pinned VN-2000 shift
                tol = 0.05
            assert abs(x - ex) <= tol and abs(y - ey) <= tol, (cid, uri, (x, y), (ex, ey))
            # a 2 m (or 2e-5 degree) box around that position, in the same CRS, finds the item
            d = 2e-5 if code in ("CRS84", "4326") else 2.0
            bbox = f"{x - d},{y - d},{x + d},{y + d}"
            found = client.get(
                f"/collections/{cid}/items",
                params={
                    "bbox": bbox,
                    "bbox-crs": uri,
                    "crs": uri,
                    "limit": 1000,
                    "skipGeometry": "true",
                },
            )
            assert found.status_code == 200, (cid, uri, found.text[:200])
            assert reference["id"] in [f["id"] for f in found.json()["features"]], (cid, uri)
            tried += 1
    assert tried == 4 * 6


def test_epsg_9209_coordinates_are_the_tm3_105_30_zone(client):
    # VN-2000 / TM-3 zone 482 vs EPSG:9209 (a different central meridian): same point, different
    # eastings; same northing within a few hundred metres
    native = _first_position(
        client.get("/collections/parcels/items/1?crs=EPSG:5897").json()["geometry"]
    )
    other = _first_position(
        client.get("/collections/parcels/items/1?crs=EPSG:9209").json()["geometry"]
    )
    assert 100 < abs(other[0] - native[0]) < 200_000
    assert abs(other[1] - native[1]) < 1000


# -- no server path in any error (item 8: a non-raster input showed the absolute path) ---------
def test_public_message_strips_paths_and_sql():
    from api.errors import public_message

    text = public_message(f"'{REPO}/data/README.md' not recognized as a supported file format.")
    assert str(REPO) not in text and "README.md" in text
    assert (
        public_message("No resource at /collections/nope.") == "No resource at /collections/nope."
    )
    assert "SELECT" not in public_message('SELECT * FROM "parcels" WHERE id = 1')
    assert "Traceback" not in public_message(
        'bad\nTraceback (most recent call last):\n  File "/x/y.py"'
    )


def test_a_process_error_never_shows_the_server_path(client, settings):
    readme = REPO / "data" / "README.md"  # exists, under the data folder, not a raster
    for prefer in ({}, {"Prefer": "respond-async"}):
        r = client.post(
            "/processes/land-change-detection/execution",
            json={"inputs": {"before": str(readme), "after": str(readme), "store": False}},
            headers={**BEARER, **prefer},
        )
        texts = [r.text]
        if r.status_code == 201:
            location = r.headers["location"].replace("http://testserver", "")
            for _ in range(300):
                job = client.get(location + "?f=json")
                if job.json().get("status") in ("failed", "successful", "dismissed"):
                    break
            texts += [job.text, client.get(location + "/results?f=json").text]
        for text in texts:
            assert str(REPO) not in text and "/work/" not in text, text[:500]
            assert not re.search(r"\"/(root|home|tmp|usr)/", text), text[:500]


def test_a_failed_jobs_message_never_shows_the_server_path(client, api_engine):
    # a job that failed on an error naming a file on the server (what rasterio says about a
    # file that is not a raster)
    from sqlalchemy import text

    message = (
        f"ProcessorExecuteError: '{REPO}/data/README.md' not recognized as a supported file format."
    )
    with api_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO pygeoapi.jobs (identifier, process_id, created, started, finished, updated, "
                "status, message, progress) VALUES ('path-test-job', 'land-change-detection', now(), now(), "
                "now(), now(), 'failed', :m, 100)"
            ),
            {"m": message},
        )
    try:
        one = client.get("/jobs/path-test-job?f=json")
        listed = client.get("/jobs?f=json")
        assert one.status_code == 200 and listed.status_code == 200
        assert "README.md" in one.json()["message"]
        for r in (one, listed):
            assert str(REPO) not in r.text and "/work/" not in r.text, r.text[:400]
    finally:
        with api_engine.begin() as conn:
            conn.execute(text("DELETE FROM pygeoapi.jobs WHERE identifier = 'path-test-job'"))
