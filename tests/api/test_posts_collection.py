"""The ``posts`` collection and ``commune-sentiment`` by genre (issue 11, migration 0008)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.postgis

POSTS = [  # key, text, label, duplicate of the previous one
    ("api-post-1", "Đường ở xã Liêm Tuyền ngập sâu, chưa ai xử lý", "negative", False),
    ("api-post-2", "Cầu mới ở xã Liêm Tuyền đẹp, đi lại thuận tiện hơn nhiều", "positive", False),
    ("api-post-3", "Cầu mới ở xã Liêm Tuyền đẹp, đi lại thuận tiện hơn nhiều", "positive", True),
]


@pytest.fixture()
def posts(api_engine):
    ids = []
    with api_engine.begin() as conn:
        unit = conn.execute(text("SELECT id FROM admin_units WHERE code = '13285'")).scalar_one()
        for key, body, label, duplicate in POSTS:
            pid = conn.execute(
                text(
                    "INSERT INTO posts (post_key, source, url, author, published_at, text, content_hash, duplicate_of) "
                    "VALUES (:k, 'facebook', :u, 'Người Riêng Tư', '2025-09-02 09:00+07', :t, md5(:t), :d) RETURNING id"
                ),
                {
                    "k": key,
                    "u": f"https://fb.test/{key}",
                    "t": body,
                    "d": ids[-1] if duplicate else None,
                },
            ).scalar_one()
            ids.append(pid)
            conn.execute(
                text(
                    "INSERT INTO post_scores (post_id, model_version, genre, label, probabilities, confidence) "
                    "VALUES (:p, 'test', 'post', :l, CAST(:pr AS jsonb), 0.8)"
                ),
                {"p": pid, "l": label, "pr": json.dumps({label: 0.8})},
            )
            conn.execute(
                text("INSERT INTO post_places (post_id, admin_unit_id) VALUES (:p, :u)"),
                {"p": pid, "u": unit},
            )
    yield ids
    with api_engine.begin() as conn:
        conn.execute(text("DELETE FROM posts WHERE id = ANY(:i)"), {"i": ids})


def test_posts_collection_is_published_without_authors(client, posts):
    ids = {c["id"] for c in client.get("/collections?f=json").json()["collections"]}
    assert "posts" in ids
    queryables = client.get("/collections/posts/queryables?f=json").json()["properties"]
    assert {"sentiment", "source", "text", "published_at"} <= set(queryables)
    assert "author" not in queryables
    doc = client.get("/collections/posts/items?f=json&limit=100").json()
    assert doc["numberMatched"] == 2  # the exact copy is not published
    feature = next(f for f in doc["features"] if f["properties"]["sentiment"] == "negative")
    assert "author" not in feature["properties"] and feature["geometry"]["type"] == "MultiPoint"
    assert feature["properties"]["place_codes"] == "13285"
    one = client.get(f"/collections/posts/items/{feature['id']}?f=json")
    assert one.status_code == 200 and one.json()["properties"]["sentiment_confidence"] == 0.8
    neg = client.get("/collections/posts/items?f=json&sentiment=negative").json()
    assert neg["numberMatched"] == 1
    assert client.get("/collections/posts/items?f=json&author=x").status_code == 400


def test_commune_sentiment_can_be_filtered_by_genre(client, posts):
    assert (
        "genre"
        in client.get("/collections/commune-sentiment/queryables?f=json").json()["properties"]
    )
    post_rows = client.get(
        "/collections/commune-sentiment/items?f=json&genre=post&limit=100"
    ).json()
    assert post_rows["numberMatched"] == 1
    p = post_rows["features"][0]
    assert p["id"] == "13285:2025-09-02:post"
    assert p["properties"]["genre"] == "post"
    assert (
        p["properties"]["articles"],
        p["properties"]["negative"],
        p["properties"]["positive"],
    ) == (2, 1, 1)
    articles = client.get(
        "/collections/commune-sentiment/items?f=json&genre=article&limit=1000"
    ).json()
    assert articles["numberMatched"] > 0
    assert {f["properties"]["genre"] for f in articles["features"]} == {"article"}
    cql = client.get(
        "/collections/commune-sentiment/items",
        params={"f": "json", "filter": "genre = 'post' AND commune_code = '13285'"},
    ).json()
    assert cql["numberMatched"] == 1
