"""Pipeline stages without a database (Scrapy test crawler)."""

from __future__ import annotations

import pytest
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.test import get_crawler

from crawler.pipelines import CleanStage, ExtractStage, ScoreStage
from crawler.run import PIPELINES
from crawler.settings import DEFAULT_GAZETTEER

from .test_extraction import page


class _Spider:
    name = "news"

    def __init__(self):
        self.failures = []
        self.failure_sink = self.failures.append
        self.sites_by_name = {}


def test_stages_are_numbered_in_order():
    assert list(PIPELINES) == [
        "crawler.pipelines.ExtractStage",
        "crawler.pipelines.CleanStage",
        "crawler.pipelines.DedupeStage",
        "crawler.pipelines.ScoreStage",
        "crawler.pipelines.StoreStage",
    ]
    assert sorted(PIPELINES.values()) == list(PIPELINES.values())


def test_extract_and_clean_produce_a_record_and_dead_letters():
    crawler = get_crawler(settings_dict={"IOC_GAZETTEER": str(DEFAULT_GAZETTEER)})
    spider = _Spider()
    extract, clean = ExtractStage(crawler), CleanStage(crawler)
    item = {
        "kind": "page",
        "url": "http://x/xa-hoi/a-1001.html",
        "site": "t",
        "body": page("xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html"),
        "encoding": "utf-8",
    }
    record = clean.process_item(extract.process_item(item, spider), spider)
    assert record["relevant"] and record["published"] == "2025-08-04T09:15:00+07:00"
    assert len(record["content_hash"]) == 64
    with pytest.raises(DropItem):
        extract.process_item({**item, "body": b"<html></html>"}, spider)
    with pytest.raises(DropItem):
        extract.process_item(
            {
                "kind": "failure",
                "url": "http://x/404",
                "site": "t",
                "stage": "fetch",
                "reason": "HTTP 404",
            },
            spider,
        )
    assert [f["stage"] for f in spider.failures] == ["extract", "fetch"]


def test_score_stage_is_switched_off_without_a_scorer(tmp_path):
    with pytest.raises(NotConfigured):
        ScoreStage.from_crawler(get_crawler(settings_dict={"IOC_SCORING": False}))
    with pytest.raises(NotConfigured):
        ScoreStage.from_crawler(
            get_crawler(
                settings_dict={
                    "IOC_SCORER": str(tmp_path / "missing.joblib"),
                    "IOC_GAZETTEER": str(DEFAULT_GAZETTEER),
                }
            )
        )


def test_a_broken_scorer_never_loses_articles_and_is_switched_off():
    crawler = get_crawler(settings_dict={"IOC_SCORER_MAX_ERRORS": 3})
    stage, spider = ScoreStage(crawler, scorer=object()), _Spider()
    for i in range(3):
        record = stage._apply(
            {"canonical_url": f"http://x/{i}", "title": "t", "text": "x"},
            ValueError("feature mismatch"),
            spider,
        )
        assert "not_scored" in record["extra"] and "sentiment" not in record
    assert stage.disabled_reason and len(spider.failures) == 3
    later = stage.process_item({"canonical_url": "http://x/9", "title": "t", "text": "x"}, spider)
    assert later["extra"]["not_scored"] == stage.disabled_reason  # not asked again


def test_scored_record_gets_sentiment_topic_places():
    stage, spider = ScoreStage(get_crawler(), scorer=object()), _Spider()
    scored = {
        "sentiment": {"label": "negative", "scores": {}, "reasons": []},
        "topic": "environment",
        "topic_scores": {"environment": 0.9},
        "places": [{"code": "13495"}],
        "model_version": "sentiment-x",
    }
    record = stage._apply({"canonical_url": "http://x/1"}, scored, spider)
    assert record["sentiment"]["label"] == "negative" and record["places"] == [{"code": "13495"}]
    assert record["model_version"] == "sentiment-x"
    declined = stage._apply({"canonical_url": "http://x/2"}, {"not_scored": "too short"}, spider)
    assert declined["extra"]["not_scored"] == "too short" and "sentiment" not in declined
