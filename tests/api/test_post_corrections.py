"""Media staff correct a citizen's post's sentiment label as they correct an article's: Features
Part 4 PATCH on ``/collections/posts/items/{id}`` and ``POST /digest/feedback`` with ``post_id``;
the published post and the commune counts show the corrected label (migration 0012)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.api.conftest import BEARER
from tests.api.test_features import assert_ogc_error
from tests.api.test_posts_collection import posts  # noqa: F401 - the fixture

pytestmark = pytest.mark.postgis


def test_media_staff_correct_a_post_through_part4_and_the_digest_form(
    client,
    api_engine,
    posts,  # noqa: F811
):
    negative, positive = posts[0], posts[1]
    url = f"/collections/posts/items/{negative}"
    assert_ogc_error(client.patch(url, json={"sentiment": "neutral"}), 401)
    r = client.patch(
        url,
        json={"sentiment": "neutral", "reviewer": "Phạm D", "note": "chỉ hỏi thông tin"},
        headers=BEARER,
    )
    assert r.status_code == 200, r.text
    props = r.json()["properties"]
    assert (props["sentiment"], props["sentiment_model"], props["sentiment_corrected"]) == (
        "neutral",
        "negative",
        "neutral",
    )
    assert "author" not in props
    # the commune's post counts read the corrected label, as its article counts do
    rows = client.get("/collections/commune-sentiment/items?f=json&genre=post&limit=100").json()
    p = rows["features"][0]["properties"]
    assert (p["articles"], p["negative"], p["neutral"], p["positive"]) == (2, 0, 1, 1)

    r = client.post(
        "/digest/feedback",
        json={"post_id": positive, "label": "negative", "reviewer": "Phạm D"},
        headers=BEARER,
    )
    assert r.status_code == 201, r.text
    assert r.json()["post_id"] == positive and "article_id" not in r.json()
    one = client.get(f"/collections/posts/items/{positive}?f=json").json()["properties"]
    assert one["sentiment"] == "negative" and one["sentiment_model"] == "positive"

    assert_ogc_error(
        client.post(
            "/digest/feedback",
            json={"post_id": positive, "article_id": 1, "label": "neutral", "reviewer": "x"},
            headers=BEARER,
        ),
        400,
        "not both",
    )
    assert_ogc_error(
        client.post(
            "/digest/feedback",
            json={"post_id": 2**62, "label": "neutral", "reviewer": "x"},
            headers=BEARER,
        ),
        404,
        "post",
    )
    assert_ogc_error(
        client.patch(
            f"/collections/posts/items/{positive}",
            json={"sentiment": "angry", "reviewer": "x"},
            headers=BEARER,
        ),
        400,
        "label",
    )
    assert_ogc_error(
        client.patch(f"/collections/posts/items/{positive}", json={"text": "khác"}, headers=BEARER),
        400,
        "sentiment",
    )
    with api_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT post_id, article_id, old_label, new_label FROM label_feedback "
                "WHERE post_id = ANY(:p) ORDER BY id"
            ),
            {"p": [negative, positive]},
        ).all()
        audit = conn.execute(
            text(
                "SELECT target_table, channel, old_value, new_value FROM audit_log "
                "WHERE action = 'correct_label' AND target_table = 'posts' "
                "AND target_id = ANY(:p) ORDER BY id"
            ),
            {"p": [negative, positive]},
        ).all()
    assert [tuple(r) for r in rows] == [
        (negative, None, "negative", "neutral"),
        (positive, None, "positive", "negative"),
    ]
    assert [(a[0], a[1], a[2], a[3]["sentiment"]) for a in audit] == [
        ("posts", "api", {"sentiment": "negative"}, "neutral"),
        ("posts", "api", {"sentiment": "positive"}, "negative"),
    ]
