"""The store: idempotent upserts, scores and places, dead letters, the spool."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from crawler.store import ArticleStore, Spool, content_hash, simhash

pytestmark = pytest.mark.postgis

URL = "http://store-test.invalid/a-0001.html"


def _record(**kw):
    body = "Người dân xã Thanh Liêm ra quân dọn vệ sinh đường làng và nạo vét kênh mương."
    base = {
        "url": URL,
        "canonical_url": URL,
        "source_name": "store-test",
        "title": "Thanh Liêm dọn vệ sinh",
        "lead": "Sáng nay.",
        "text": body,
        "author": "Minh Anh",
        "published": "2025-08-04T09:15:00+07:00",
        "language": "vi",
        "content_hash": content_hash(body),
        "simhash": simhash(body),
        "relevant": True,
        "matched_terms": ["Thanh Liêm"],
        "extra": {"warnings": []},
    }
    base.update(kw)
    return base


@pytest.fixture()
def store(engine):
    def clean():
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM articles WHERE url LIKE 'http://store-test.invalid/%'"))
            conn.execute(text("DELETE FROM crawl_failures WHERE source_name = 'store-test'"))
            conn.execute(text("DELETE FROM admin_units WHERE code = 'T-0001'"))

    clean()
    yield ArticleStore(engine)
    clean()


def test_upsert_is_idempotent_and_stores_scores_and_places(store, engine):
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO admin_units (code, level, name, name_ascii, valid_from) "
                "VALUES ('T-0001', 'commune', 'Thanh Liêm', 'Thanh Liem', '2025-07-01')"
            )
        )
    scored = _record(
        sentiment={
            "label": "positive",
            "scores": {"negative": 0.1, "neutral": 0.3, "positive": 0.6},
            "reasons": [{"text": "x"}],
        },
        topic="environment",
        topic_scores={"environment": 0.7},
        model_version="sentiment-test",
        places=[
            {"code": "T-0001", "mention": "Thanh Liêm", "confidence": 0.9},
            {"code": "unknown-code", "mention": "?"},
        ],
    )
    first = store.upsert_article(scored)
    second = store.upsert_article({**scored, "title": "Thanh Liêm dọn vệ sinh (cập nhật)"})
    assert first == second
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM articles WHERE id = :i"), {"i": first}).one()
        assert row.title.endswith("(cập nhật)")
        assert row.published_at == dt.datetime(2025, 8, 4, 2, 15, tzinfo=dt.UTC)
        score = conn.execute(
            text("SELECT * FROM article_scores WHERE article_id = :i"), {"i": first}
        ).one()
        assert score.label == "positive" and score.topic == "environment"
        places = conn.execute(
            text("SELECT * FROM article_places WHERE article_id = :i"), {"i": first}
        ).all()
        assert len(places) == 1 and places[0].mention == "Thanh Liêm"
        source = conn.execute(
            text("SELECT name FROM news_sources WHERE id = :i"), {"i": row.source_id}
        ).scalar_one()
        assert source == "store-test"


def test_exact_and_near_duplicates_point_at_the_first_copy(store):
    first = store.upsert_article(_record())
    other = "http://store-test.invalid/b-0002.html"
    body = _record()["text"]
    assert store.find_duplicate(other, content_hash(body), simhash(body), full_text=body)[:2] == (
        "exact",
        first,
    )
    near = body + " Theo Báo Mẫu."
    full = "\n".join(["Thanh Liêm dọn vệ sinh", "Sáng nay.", near])
    found = store.find_duplicate(
        other, content_hash(near), simhash(full), full_text=full, threshold=0.7
    )
    assert found is not None and found[1] == first
    unrelated = "Hội chợ sách mùa thu khai mạc tại công viên trung tâm với một trăm gian hàng."
    assert (
        store.find_duplicate(
            other, content_hash(unrelated), simhash(unrelated), full_text=unrelated
        )
        is None
    )


def test_spool_survives_an_outage_and_drains(store, engine, tmp_path):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append("article", _record())
    spool.append(
        "failure", {"url": URL, "source_name": "store-test", "stage": "fetch", "reason": "HTTP 500"}
    )
    dead = ArticleStore(
        __import__("gis.db.session", fromlist=["make_engine"]).make_engine(
            "postgresql://ioc@127.0.0.1:9/ioc", connect_args={"connect_timeout": 1}
        )
    )
    assert spool.drain(dead) == 0 and len(spool) == 2  # still down: nothing lost
    assert spool.drain(store) == 2 and len(spool) == 0
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM articles WHERE url = :u"), {"u": URL}
            ).scalar_one()
            == 1
        )
        assert (
            conn.execute(
                text("SELECT reason FROM crawl_failures WHERE url = :u"), {"u": URL}
            ).scalar_one()
            == "HTTP 500"
        )


def test_duplicate_lookup_is_limited_to_earlier_crawls(store):
    first = store.upsert_article(_record())
    body = _record()["text"]
    other = "http://store-test.invalid/c-0003.html"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    found = store.find_duplicate(
        other, content_hash(body), simhash(body), full_text=body, fetched_before=later
    )
    assert found is not None and found[1] == first
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert (
        store.find_duplicate(
            other, content_hash(body), simhash(body), full_text=body, fetched_before=earlier
        )
        is None
    )
