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
        "crawler.pipelines.ExtractStage", "crawler.pipelines.CleanStage",
        "crawler.pipelines.DedupeStage", "crawler.pipelines.ScoreStage",
        "crawler.pipelines.StoreStage",
    ]
    assert sorted(PIPELINES.values()) == list(PIPELINES.values())


def test_extract_and_clean_produce_a_record_and_dead_letters():
    crawler = get_crawler(settings_dict={"IOC_GAZETTEER": str(DEFAULT_GAZETTEER)})
    spider = _Spider()
    extract, clean = ExtractStage(crawler), CleanStage(crawler)
    item = {"kind": "page", "url": "http://x/xa-hoi/a-1001.html", "site": "t",
            "body": page("xa-hoi/xa-thanh-liem-nao-vet-kenh-1001.html"), "encoding": "utf-8"}
    record = clean.process_item(extract.process_item(item, spider), spider)
    assert record["relevant"] and record["published"] == "2025-08-04T09:15:00+07:00"
    assert len(record["content_hash"]) == 64
    with pytest.raises(DropItem):
        extract.process_item({**item, "body": b"<html></html>"}, spider)
    with pytest.raises(DropItem):
        extract.process_item({"kind": "failure", "url": "http://x/404", "site": "t",
                              "stage": "fetch", "reason": "HTTP 404"}, spider)
    assert [f["stage"] for f in spider.failures] == ["extract", "fetch"]


def test_score_stage_is_switched_off_without_a_scorer(tmp_path):
    with pytest.raises(NotConfigured):
        ScoreStage.from_crawler(get_crawler(settings_dict={"IOC_SCORING": False}))
    with pytest.raises(NotConfigured):
        ScoreStage.from_crawler(get_crawler(settings_dict={
            "IOC_SCORER": str(tmp_path / "missing.joblib"),
            "IOC_GAZETTEER": str(DEFAULT_GAZETTEER)}))


class _BrokenScorer:
    model_version = "broken"

    def __init__(self):
        self.calls = 0

    def score_records(self, records):
        self.calls += 1
        raise ValueError("feature mismatch")


def test_a_broken_scorer_never_loses_articles_and_is_switched_off():
    crawler = get_crawler(settings_dict={"IOC_SCORER_MAX_ERRORS": 3})
    scorer = _BrokenScorer()
    stage, spider = ScoreStage(crawler, scorer), _Spider()
    for i in range(6):
        record = stage.process_item({"canonical_url": f"http://x/{i}", "title": "t",
                                     "text": "x"}, spider)
        assert "not_scored" in record["extra"] and "sentiment" not in record
    assert scorer.calls == 3 and len(spider.failures) == 3
