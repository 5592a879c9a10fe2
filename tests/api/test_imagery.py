"""Issue 14 over HTTP: raster map tiles of stored scenes, the before/after page, alert evidence
chips (200/404), OGC API - Coverages collections of the scenes, and the OpenAPI document.

A database of its own (a real detection run is stored in it and committed)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text

from tests.api.conftest import migrated_database

pytestmark = pytest.mark.postgis

REPO = Path(__file__).resolve().parents[2]
LAND = REPO / "data" / "land"


@pytest.fixture(scope="module")
def imagery(database_url, tmp_path_factory):
    from gis.alerts import load_rules
    from gis.cadastre import import_cadastre
    from gis.change.detect import DetectionConfig, detect_changes
    from gis.change.store import store_run
    from gis.db.session import make_engine

    with migrated_database(database_url, "ioc_imagery_test") as url:
        engine = make_engine(url)
        import_cadastre(engine, LAND / "sample_cadastre.gpkg")
        result = detect_changes(
            LAND / "before", LAND / "after_T48QXH_20250418.tif", DetectionConfig(method="cva")
        )
        state = tmp_path_factory.mktemp("state")
        stored = store_run(engine, result, load_rules(), state_dir=state)
        stored.update(state=state, result=result)
        yield url, engine, stored
        engine.dispose()


@pytest.fixture(scope="module")
def client(imagery):
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings

    url, engine, _ = imagery
    app = create_app(ApiSettings(base_url="http://testserver", max_items=1000), url, engine=engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _scenes(engine, run_id):
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT r.before_scene_id, r.after_scene_id, ST_X(ST_Centroid(s.footprint)) AS lon, "
                "ST_Y(ST_Centroid(s.footprint)) AS lat FROM detection_runs r "
                "JOIN imagery_scenes s ON s.id = r.after_scene_id WHERE r.id = :r"
            ),
            {"r": run_id},
        ).one()


def _tile(lon, lat, z):
    n = 2**z
    return (
        int((lon + 180) / 360 * n),
        int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n),
    )


def test_imagery_tiles(client, imagery):
    _, engine, stored = imagery
    s = _scenes(engine, stored["run_id"])
    x, y = _tile(s.lon, s.lat, 16)
    pixels = {}
    for scene in (s.before_scene_id, s.after_scene_id):
        for style in ("truecolor", "falsecolor"):
            r = client.get(f"/imagery/{scene}/tiles/16/{x}/{y}.png?style={style}")
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            img = np.asarray(Image.open(io.BytesIO(r.content)))
            assert img.shape == (256, 256, 4) and (img[..., 3] == 255).any()
            assert img[..., :3][img[..., 3] == 255].std() > 10
            pixels[scene, style] = img
    assert not np.array_equal(
        pixels[s.before_scene_id, "truecolor"], pixels[s.after_scene_id, "truecolor"]
    )
    # by run and moment (latest: what the shipped QGIS project asks for)
    # with the run's one stretch for both dates (its chips' stretch), not each scene's own
    from gis.evidence import pair_stretch, render_tile

    with engine.connect() as conn:
        cogs = {
            r.scene_id: r
            for r in conn.execute(text("SELECT scene_id, path, bands, stretch FROM scene_cogs"))
        }
    shared = pair_stretch(cogs[s.before_scene_id].stretch, cogs[s.after_scene_id].stretch)
    for run in (stored["run_id"], "latest"):
        for moment, scene in (("before", s.before_scene_id), ("after", s.after_scene_id)):
            r = client.get(f"/imagery/runs/{run}/{moment}/tiles/16/{x}/{y}.png")
            assert r.status_code == 200
            c = cogs[scene]
            expected = render_tile(c.path, c.bands, shared, 16, x, y, "truecolor")
            got = np.asarray(Image.open(io.BytesIO(r.content)))
            assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(expected))))
    assert not np.array_equal(got, pixels[s.after_scene_id, "truecolor"])
    assert client.get(f"/imagery/runs/latest/during/tiles/16/{x}/{y}.png").status_code == 404
    assert client.get(f"/imagery/runs/987654/before/tiles/16/{x}/{y}.png").status_code == 404
    assert client.get(f"/imagery/{s.after_scene_id}/tiles/16/0/0.png").status_code == 204
    r = client.get(f"/imagery/{s.after_scene_id}/tiles/16/{x}/{y}.png?style=ndvi")
    assert r.status_code == 400 and "ndvi" in r.json()["description"]
    assert (
        client.get(f"/imagery/{s.after_scene_id}/tiles/16/{x}/{y}.png?colour=1").status_code == 400
    )
    r = client.get(f"/imagery/987654/tiles/16/{x}/{y}.png")
    assert r.status_code == 404 and "scene 987654" in r.json()["description"]
    assert client.get(f"/imagery/{s.after_scene_id}/tiles/3/9/0.png").status_code == 404
    huge = "9" * 30  # beyond the id columns' range: 404, not a database error
    assert client.get(f"/imagery/{huge}/tiles/16/{x}/{y}.png").status_code == 404
    assert client.get(f"/imagery/runs/{huge}/after/tiles/16/{x}/{y}.png").status_code == 404
    assert client.get(f"/imagery/runs/{huge}").status_code == 404
    assert (
        client.get(f"/collections/parcel-alerts/items/{huge}/evidence/after.png").status_code == 404
    )


def test_evidence_routes(client, imagery):
    url, engine, stored = imagery
    r = client.get(f"/collections/parcel-alerts/items?run_id={stored['run_id']}&f=json")
    features = r.json()["features"]
    assert features and len(features) == stored["alerts"]
    for f in features:
        for moment in ("before", "after"):
            href = f["properties"][f"evidence_{moment}"]
            assert href == (
                f"http://testserver/collections/parcel-alerts/items/{f['id']}/evidence/{moment}.png"
            )
            for style in ("truecolor", "falsecolor"):
                r = client.get(f"{href}?style={style}")
                assert r.status_code == 200 and r.headers["content-type"] == "image/png"
                assert Image.open(io.BytesIO(r.content)).size == (384, 384)
    r = client.get("/collections/parcel-alerts/items/99999999/evidence/before.png")
    assert r.status_code == 404 and "99999999" in r.json()["description"]
    alert_id = features[0]["id"]
    assert (
        client.get(f"/collections/parcel-alerts/items/{alert_id}/evidence/during.png").status_code
        == 404
    )
    assert (
        client.get(
            f"/collections/parcel-alerts/items/{alert_id}/evidence/after.png?style=x"
        ).status_code
        == 400
    )
    # an alert without imagery: 404 naming it
    with engine.begin() as conn:
        run = conn.execute(
            text(
                "INSERT INTO detection_runs (status, method) VALUES "
                "('succeeded', 'cva') RETURNING id"
            )
        ).scalar()
        bare = conn.execute(
            text(
                "INSERT INTO parcel_alerts (run_id, parcel_id, commune_code, changed_area_m2, "
                "changed_fraction, legal_code, rule, severity) SELECT :r, parcel_id, commune_code, "
                "1, 0.1, legal_code, rule, severity FROM parcel_alerts WHERE id = :a RETURNING id"
            ),
            {"r": run, "a": alert_id},
        ).scalar()
    r = client.get(f"/collections/parcel-alerts/items/{bare}/evidence/before.png")
    assert r.status_code == 404
    assert r.json()["description"] == (
        f"Parcel alert {bare} has no imagery evidence (its run has no stored scenes)."
    )
    assert (
        client.get(f"/collections/parcel-alerts/items/{bare}?f=json").json()["properties"][
            "evidence_before"
        ]
        is None
    )


def test_run_page_and_coverages(client, imagery):
    _, engine, stored = imagery
    s = _scenes(engine, stored["run_id"])
    r = client.get(f"/imagery/runs/{stored['run_id']}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    # both maps show the run's tiles (the run's one stretch, as its chips), scenes named
    assert '"/imagery/runs/" + RUN + "/" + moment + "/tiles/' in page
    assert f"(cảnh {s.before_scene_id})" in page and f"(cảnh {s.after_scene_id})" in page
    assert "http://testserver/vendor/leaflet/leaflet.js" in page  # local Leaflet: offline
    assert "unpkg.com" not in page
    assert client.get("/imagery/runs/987654").status_code == 404
    # one OGC API - Coverages collection per scene
    ids = {c["id"] for c in client.get("/collections?f=json").json()["collections"]}
    cov = f"imagery-scene-{s.after_scene_id}"
    assert {cov, f"imagery-scene-{s.before_scene_id}"} <= ids
    r = client.get(f"/collections/{cov}?f=json")
    assert r.status_code == 200
    r = client.get(f"/collections/{cov}/coverage?f=json")
    assert r.status_code == 200, r.text[:300]
    assert client.get("/collections/parcels/coverage").status_code == 404
    # a bbox inside the scene works; what pygeoapi answered 500 is a 400 naming the problem
    # (schemathesis: an empty bbox with bbox-crs=https://0.com)
    lon, lat = (
        engine.connect()
        .execute(
            text(
                "SELECT ST_X(ST_Centroid(footprint)), ST_Y(ST_Centroid(footprint)) FROM imagery_scenes "
                "WHERE id = :i"
            ),
            {"i": s.after_scene_id},
        )
        .one()
    )
    r = client.get(
        f"/collections/{cov}/coverage?f=json&bbox={lon - 0.002},{lat - 0.002},"
        f"{lon + 0.002},{lat + 0.002}"
    )
    assert r.status_code == 200, r.text[:300]
    for query, words in [
        ("bbox=0.0,0.0,0.0,0.0&bbox-crs=https%3A%2F%2F0.com&f=json", "bbox is empty"),
        ("bbox=105,20,106,21&bbox-crs=https%3A%2F%2F0.com&f=json", "bbox-crs"),
        ("bbox=a,b,c,d&f=json", "bbox values must be numbers"),
        ("colour=red&f=json", "Unknown query parameter 'colour'"),
    ]:
        r = client.get(f"/collections/{cov}/coverage?{query}")
        assert r.status_code == 400 and words in r.json()["description"], (query, r.text[:300])
    # the feature collections are untouched
    assert client.get("/collections/parcel-alerts/items?f=json&limit=1").status_code == 200


def test_openapi_declares_the_imagery_routes(client, imagery):
    paths = client.get("/openapi?f=json").json()["paths"]
    assert "get" in paths["/imagery/{scene_id}/tiles/{z}/{x}/{y}.png"]
    assert "get" in paths["/imagery/runs/{run_id}"]
    ev = paths["/collections/parcel-alerts/items/{featureId}/evidence/{moment}.png"]["get"]
    assert {"200", "404"} <= set(ev["responses"])
    _, engine, stored = imagery
    s = _scenes(engine, stored["run_id"])
    assert f"/collections/imagery-scene-{s.after_scene_id}/coverage" in paths


def test_a_committed_rerun_replaces_the_chips_and_keeps_no_stale_file(client, imagery):
    from gis.alerts import load_rules
    from gis.change.store import store_run

    _, engine, stored = imagery
    folder = stored["state"] / "evidence" / f"run-{stored['run_id']}"
    old = set(folder.glob("*.png"))
    again = store_run(engine, stored["result"], load_rules(), state_dir=stored["state"])
    assert again["updated"] and again["run_id"] == stored["run_id"]
    now = set(folder.glob("*.png"))
    with engine.connect() as conn:
        rows = {
            Path(p)
            for p in conn.execute(
                text(
                    "SELECT e.path FROM alert_evidence e JOIN parcel_alerts a ON a.id = e.alert_id "
                    "WHERE a.run_id = :r"
                ),
                {"r": stored["run_id"]},
            ).scalars()
        }
    assert now == rows and not (now & old)  # new files, the replaced ones deleted at commit
    assert len(now) == 4 * again["alerts"]
    cogs = list((stored["state"] / "imagery" / "cog").glob("*.tif"))
    assert len(cogs) == 2  # same scenes: the COGs are reused, not rewritten
    r = client.get(f"/collections/parcel-alerts/items?run_id={stored['run_id']}&f=json&limit=1")
    href = r.json()["features"][0]["properties"]["evidence_after"]
    assert client.get(href).status_code == 200


def test_the_generated_configuration_with_coverages_validates(imagery):
    from api.config import build_config, collect_table_infos, validate
    from api.imagery_routes import scene_coverages
    from api.settings import ApiSettings

    _, engine, _ = imagery
    coverages = scene_coverages(engine)
    assert len(coverages) == 2
    config = build_config(collect_table_infos(engine), ApiSettings(), coverages=coverages)
    validate(config)  # pygeoapi's own schema
    provider = next(iter(coverages.values()))["providers"][0]
    assert provider["name"] == "rasterio" and Path(provider["data"]).is_file()


PUBLIC = "https://dat-dai.example.gov.vn/ioc"  # the configured public URL, not the request's


@pytest.fixture(scope="module")
def public_client(imagery):
    """The API behind a proxy: public URL with a path, requests arriving at testserver."""
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings

    url, engine, _ = imagery
    app = create_app(ApiSettings(base_url=PUBLIC + "/"), url, engine=engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _local(href: str) -> str:
    assert href.startswith(PUBLIC + "/"), href
    return href[len(PUBLIC) :]


def test_alert_links_are_absolute_with_type_and_title(public_client, imagery):
    """QGIS, OWSLib and the IOC dashboard follow an item's hrefs as they are: the evidence
    chips and the report are absolute URLs on the configured public URL, with a media type
    and a title, in the items page, the item (JSON) and the item's HTML page."""
    _, _, stored = imagery
    c = public_client
    r = c.get(f"/collections/parcel-alerts/items?run_id={stored['run_id']}&f=json")
    features = r.json()["features"]
    assert features
    for f in features:
        for moment in ("before", "after"):
            href = f["properties"][f"evidence_{moment}"]
            assert (
                href == f"{PUBLIC}/collections/parcel-alerts/items/{f['id']}/evidence/{moment}.png"
            )
    alert_id = features[0]["id"]
    item = c.get(f"/collections/parcel-alerts/items/{alert_id}?f=json").json()
    links = item["links"]
    assert all(link["href"].startswith(PUBLIC + "/") for link in links), links
    assert all(link.get("type") and link.get("title") for link in links), links
    chips = [link for link in links if link["rel"] == "preview"]
    assert len(chips) == 4 and {link["type"] for link in chips} == {"image/png"}
    assert len({link["title"] for link in chips}) == 4
    for link in chips:  # each one is the chip it says
        got = c.get(_local(link["href"]))
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    nir = [link["href"] for link in chips if "falsecolor" in link["href"]]
    assert len(nir) == 2 and all("NIR" in link["title"] for link in chips if link["href"] in nir)
    reports = {link["type"]: link["href"] for link in links if link["rel"] == "describedby"}
    assert reports == {
        "text/html": f"{PUBLIC}/collections/parcel-alerts/items/{alert_id}/report?f=html",
        "application/pdf": f"{PUBLIC}/collections/parcel-alerts/items/{alert_id}/report?f=pdf",
    }
    assert c.get(_local(reports["text/html"])).status_code == 200
    # the HTML item page: the chips shown and linked, the report linked, all absolute
    page = c.get(f"/collections/parcel-alerts/items/{alert_id}?f=html")
    assert page.status_code == 200
    html = page.text
    for link in chips:
        assert (
            f'href="{link["href"]}"'.replace("&", "&amp;") in html
            or f'href="{link["href"]}"' in html
        )
    assert f'src="{PUBLIC}/collections/parcel-alerts/items/{alert_id}/evidence/before.png"' in html
    assert (
        f'href="{reports["text/html"]}"' in html and f'href="{reports["application/pdf"]}"' in html
    )
    assert f'href="/collections/parcel-alerts/items/{alert_id}/evidence' not in html
    assert f'src="/collections/parcel-alerts/items/{alert_id}/evidence' not in html


def test_an_alert_without_chips_links_none():
    from api.collections import BY_ID, item_links

    spec = BY_ID["parcel-alerts"]
    links = item_links(spec, PUBLIC, "7", {"evidence_before": None, "evidence_after": None})
    assert [link["rel"] for link in links] == ["describedby", "describedby"]
    links = item_links(spec, PUBLIC, "7", {"evidence_before": "/x/before.png"})
    assert [link["href"] for link in links if link["rel"] == "preview"] == [
        f"{PUBLIC}/x/before.png",
        f"{PUBLIC}/x/before.png?style=falsecolor",
    ]
