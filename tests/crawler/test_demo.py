"""The crawler's demo stage fills the database from the shipped mirror."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

pytestmark = [pytest.mark.postgis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_demo_stage_crawls_the_mirror(database_url, engine, tmp_path):
    from crawler.demo import demo_stage
    from ioc.demo import DemoContext

    messages: list[str] = []
    ctx = DemoContext(
        engine=engine,
        database_url=database_url,
        state_dir=tmp_path,
        data_dir=REPO / "data",
        echo=messages.append,
    )
    try:
        demo_stage(ctx)
        _check_stored(engine, messages)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM articles WHERE url LIKE 'http://127.0.0.1:%'"))


def _check_stored(engine, messages: list[str]) -> None:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT title, published_at, relevant, duplicate_of FROM articles "
                "WHERE url LIKE 'http://127.0.0.1:%' AND url LIKE '%-20__.html'"
            )
        ).all()
        assert len(rows) >= 25
        assert all(r.published_at is not None for r in rows)
        assert sum(r.relevant for r in rows) >= 20
        assert sum(r.duplicate_of is not None for r in rows) >= 1
        scored = conn.execute(
            text(
                "SELECT count(*) FROM article_scores s JOIN articles a ON a.id = s.article_id "
                "WHERE a.url LIKE 'http://127.0.0.1:%'"
            )
        ).scalar_one()
        # the model ships (nlp/models): a scorer that fails to load switches the stage off,
        # which must fail here, not pass as "nothing scored" (issue 12)
        assert scored >= 20, f"only {scored} articles scored: {messages}"
        negative = (
            conn.execute(
                text(
                    "SELECT a.title FROM article_scores s JOIN articles a ON a.id = s.article_id "
                    "WHERE s.label = 'negative' AND a.url LIKE 'http://127.0.0.1:%'"
                )
            )
            .scalars()
            .all()
        )
        assert negative  # accidents, pollution, complaints are in the sample
    assert any("stored" in m for m in messages)
    assert not any("scoring skipped" in m for m in messages)


def test_the_shipped_scorer_loads():
    # the demo's scoring stage loads this; any failure here is a real failure, not a skip
    from nlp.scoring import load_scorer

    scorer = load_scorer(use_ner=False)
    assert getattr(scorer, "model_version", None)
