"""Review writes: never without a token; land officers review alerts, media staff correct labels."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api.auth import TokenStore
from api.errors import AuthenticationError, ConfigError
from tests.api.conftest import BEARER
from tests.api.test_features import assert_ogc_error

pytestmark = pytest.mark.postgis


def first_id(engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar())


def test_no_write_without_a_valid_token(client, api_engine):
    alert = first_id(api_engine, "SELECT min(id) FROM parcel_alerts")
    body = {"review_status": "confirmed", "reviewer": "Trần Thị B"}
    url = f"/collections/parcel-alerts/items/{alert}"
    assert_ogc_error(client.patch(url, json=body), 401, "token")
    assert_ogc_error(
        client.patch(url, json=body, headers={"Authorization": "Bearer wrong-token-wrong-token"}),
        401,
    )
    assert_ogc_error(client.put(url, json=body, headers={"Authorization": "Basic xyz"}), 401)
    assert_ogc_error(client.post("/collections/parcels/items", json={"type": "Feature"}), 401)
    assert_ogc_error(client.delete("/collections/parcels/items/1"), 401)
    assert_ogc_error(
        client.post("/digest/feedback", json={"article_id": 1, "label": "neutral"}), 401
    )
    assert_ogc_error(
        client.post("/processes/sentiment-scoring/execution", json={"inputs": {}}), 401
    )
    with api_engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT review_status FROM parcel_alerts WHERE id = :i"), {"i": alert}
            ).scalar()
            == "new"
        )


def test_land_officer_confirms_and_dismisses_an_alert(client, api_engine):
    alert = first_id(api_engine, "SELECT min(id) FROM parcel_alerts")
    url = f"/collections/parcel-alerts/items/{alert}"
    r = client.patch(
        url,
        json={
            "review_status": "confirmed",
            "reviewer": "Trần Thị B",
            "review_note": "Đã xây nhà trên đất lúa",
        },
        headers=BEARER,
    )
    assert r.status_code == 200, r.text
    props = r.json()["properties"]
    assert props["review_status"] == "confirmed" and props["reviewer"] == "Trần Thị B"
    assert props["reviewed_at"] is not None
    # a GeoJSON Feature body (Part 4 PUT) works too
    r = client.put(
        url,
        json={
            "type": "Feature",
            "properties": {"review_status": "dismissed", "reviewer": "Lê Văn C"},
        },
        headers=BEARER,
    )
    assert r.status_code == 200 and r.json()["properties"]["review_status"] == "dismissed"
    filtered = client.get("/collections/parcel-alerts/items?review_status=dismissed").json()
    assert [f["id"] for f in filtered["features"]] == [alert]
    assert filtered["features"][0]["properties"]["reviewer"] == "Lê Văn C"
    assert_ogc_error(
        client.patch(url, json={"review_status": "approved", "reviewer": "x"}, headers=BEARER),
        400,
        "review_status",
    )
    # without a reviewer name the token's name is recorded
    r = client.patch(url, json={"review_status": "confirmed"}, headers=BEARER)
    assert r.status_code == 200 and r.json()["properties"]["reviewer"] == "officer"
    assert_ogc_error(
        client.patch(url, json={"review_status": "confirmed", "reviewer": 42}, headers=BEARER),
        400,
        "reviewer",
    )
    assert_ogc_error(
        client.patch(url, json={"geometry": None, "review_status": "new"}, headers=BEARER), 400
    )
    assert_ogc_error(client.patch(url, content=b"{not json", headers=BEARER), 400, "json")
    assert_ogc_error(
        client.patch(
            "/collections/parcel-alerts/items/999999",
            json={"review_status": "confirmed", "reviewer": "x"},
            headers=BEARER,
        ),
        404,
    )
    assert_ogc_error(
        client.patch("/collections/parcels/items/1", json={"area_m2": 1}, headers=BEARER), 405
    )
    assert_ogc_error(client.delete(url, headers=BEARER), 405)


def test_media_staff_correct_a_label_through_part4_and_the_digest_form(client, api_engine):
    article = first_id(api_engine, "SELECT min(id) FROM articles")
    r = client.patch(
        f"/collections/articles/items/{article}",
        json={"sentiment": "negative", "reviewer": "Phạm D", "note": "tai nạn"},
        headers=BEARER,
    )
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["sentiment"] == "negative"
    assert r.json()["properties"]["sentiment_corrected"] == "negative"
    r = client.post(
        "/digest/feedback",
        json={
            "article_id": article,
            "label": "positive",
            "reviewer": "Phạm D",
            "note": "khen thưởng",
        },
        headers=BEARER,
    )
    assert r.status_code == 201, r.text
    with api_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT old_label, new_label, reviewer FROM label_feedback "
                "WHERE article_id = :a ORDER BY id"
            ),
            {"a": article},
        ).all()
    assert [tuple(r) for r in rows][-2:] == [
        (rows[0][0], "negative", "Phạm D"),
        ("negative", "positive", "Phạm D"),
    ]
    assert_ogc_error(
        client.post(
            "/digest/feedback",
            json={"article_id": article, "label": "angry", "reviewer": "x"},
            headers=BEARER,
        ),
        400,
        "label",
    )
    assert_ogc_error(
        client.post(
            "/digest/feedback",
            json={"article_id": 10**9, "label": "neutral", "reviewer": "x"},
            headers=BEARER,
        ),
        404,
    )
    assert_ogc_error(
        client.post(
            "/digest/feedback",
            json={"article_id": article, "label": "neutral", "reviewer": "x", "sql": "drop"},
            headers=BEARER,
        ),
        400,
        "sql",
    )
    for bad in (True, 1.5, None, [article]):
        assert_ogc_error(
            client.post(
                "/digest/feedback",
                json={"article_id": bad, "label": "neutral", "reviewer": "x"},
                headers=BEARER,
            ),
            400,
            "article_id",
        )
    assert_ogc_error(
        client.post(
            "/digest/feedback",
            json={"article_id": article, "label": "neutral", "reviewer": "x", "note": 5},
            headers=BEARER,
        ),
        400,
        "note",
    )


def test_reads_can_be_protected(api_database_url, api_engine):
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.settings import ApiSettings

    app = create_app(
        ApiSettings(tokens=["reader:reader-token-0123456789"], protect_reads=True),
        api_database_url,
        engine=api_engine,
    )
    with TestClient(app) as c:
        assert_ogc_error(c.get("/collections/parcels/items"), 401)
        ok = c.get(
            "/collections/parcels/items?limit=1", headers={"X-API-Key": "reader-token-0123456789"}
        )
        assert ok.status_code == 200


def test_token_store(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("# operators\nofficer:aaaaaaaaaaaaaaaaaaaa\n")
    store = TokenStore.from_settings(["media:bbbbbbbbbbbbbbbbbbbb"], f)
    assert store.identify({"authorization": "Bearer aaaaaaaaaaaaaaaaaaaa"}) == "officer"
    assert store.identify({"x-api-key": "bbbbbbbbbbbbbbbbbbbb"}) == "media"
    with pytest.raises(AuthenticationError):
        TokenStore({}).identify({"authorization": "Bearer aaaaaaaaaaaaaaaaaaaa"})
    with pytest.raises(ConfigError, match="shorter than 16"):
        TokenStore.from_settings(["short"], None)
