"""Item pipelines: numbered stages extract (100) → clean (200) → dedupe (300) → score (400)
→ store (500).

The spider yields two kinds of items (plain dicts):

* ``{"kind": "page", "url", "body" (bytes), "encoding", "site", "status", "feed_date"}``
* ``{"kind": "failure", "url", "site", "stage", "reason"}`` (fetch errors, bad feeds)

A page that fails a stage raises ``DropItem`` with the reason, after the reason is written to
the dead-letter table ``crawl_failures`` (or spooled when the database is down). Nothing else
escapes a pipeline. The store stage spools items to ``<jobdir>/spool.jsonl`` when the
database is unreachable and writes them as soon as it answers again (also at the next run).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import DropItem, NotConfigured

from crawler.errors import ExtractionError
from crawler.extraction import extract_article
from crawler.metrics import count
from crawler.store import (
    ArticleStore,
    Spool,
    content_hash,
    hamming,
    is_outage,
    jaccard,
    shingle_set,
    simhash,
)

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

log = logging.getLogger(__name__)

MIN_TEXT_CHARS = 80


def db_worker(crawler: Crawler, name: str = "store"):
    """A database thread of the crawl (a Twisted thread pool of one thread), by purpose.

    Stores run on the "store" thread, in order (one thread keeps the writes ordered);
    duplicate lookups on the "dedupe" thread. The reactor keeps downloading and extracting
    while the database answers.
    """
    pools = crawler.__dict__.setdefault("_ioc_db_pools", {})
    pool = pools.get(name)
    if pool is None:
        from twisted.internet import reactor
        from twisted.python.threadpool import ThreadPool

        pool = ThreadPool(minthreads=1, maxthreads=1, name=f"ioc-{name}")
        pool.start()
        pools[name] = pool

        def stop(*_args: Any, **_kwargs: Any) -> None:
            if pool.started:
                pool.stop()

        reactor.addSystemEventTrigger("before", "shutdown", stop)
    return pool


def in_db_thread(crawler: Crawler, func, *args: Any, name: str = "store"):
    """Run ``func(*args)`` on the crawl's database thread ``name``; a Deferred of its result."""
    from twisted.internet import reactor
    from twisted.internet.threads import deferToThreadPool

    return deferToThreadPool(reactor, db_worker(crawler, name), func, *args)


def _spider_sites(spider: Any) -> dict[str, Any]:
    return getattr(spider, "sites_by_name", {})


class _Stage:
    stage = "stage"

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler):
        return cls(crawler)

    def process_item(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return self._process(item, spider)
        finally:
            self.crawler.stats.inc_value(
                f"ioc/seconds/{self.stage}", round(time.perf_counter() - started, 6)
            )

    def _process(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
        raise NotImplementedError

    def fail(
        self,
        item: dict[str, Any],
        spider: Any,
        reason: str,
        stage: str | None = None,
        **payload: Any,
    ) -> DropItem:
        """Record a dead letter for ``item`` and return the DropItem to raise."""
        stage = stage or self.stage
        failure = {
            "url": item.get("url"),
            "source_name": item.get("site") or item.get("source_name"),
            "stage": stage,
            "reason": reason,
            "payload": payload or None,
        }
        sink = getattr(spider, "failure_sink", None)
        if sink is not None:
            sink(failure)
        self.crawler.stats.inc_value(f"ioc/failed/{stage}")
        count("errors", failure["source_name"], stage=stage)
        return DropItem(f"{stage}: {reason} ({item.get('url')})")


class ExtractStage(_Stage):
    """100: HTML → article fields (crawler.extraction)."""

    stage = "extract"

    def _process(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
        if item.get("kind") == "failure":
            raise self.fail(item, spider, item["reason"], stage=item.get("stage") or "fetch")
        site = _spider_sites(spider).get(item.get("site"))
        try:
            article = extract_article(
                item["body"], url=item["url"], site=site, encoding=item.get("encoding")
            )
        except ExtractionError as exc:
            raise self.fail(item, spider, str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - a bug on one page must not stop the crawl
            log.exception("extraction crashed on %s", item.get("url"))
            raise self.fail(item, spider, f"extraction crashed: {exc!r}") from exc
        record = article.to_record(None)
        record.pop("source", None)
        record.update(
            url=item["url"],
            canonical_url=article.canonical_url or item["url"],
            source_name=item.get("site"),
            published=article.published,
            extra={
                "warnings": article.warnings,
                "site_name": article.site_name,
                "section": article.section,
                "tags": article.tags,
                "image": article.image,
                "encoding": article.encoding,
                "modified": article.modified.isoformat() if article.modified else None,
                "http_status": item.get("status"),
            },
        )
        if article.published is None and item.get("feed_date"):
            record["published"] = item["feed_date"]
            record["extra"]["warnings"].append("published date from the feed/sitemap")
        for warning in article.warnings:
            log.info("%s: %s", item["url"], warning)
        return record


class CleanStage(_Stage):
    """200: required fields, --since, fingerprints, relevance (gazetteer + keywords)."""

    stage = "clean"

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        from crawler.relevance import RelevanceFilter

        settings = crawler.settings
        self.relevance = RelevanceFilter.from_paths(
            settings.get("IOC_GAZETTEER"), settings.get("IOC_KEYWORDS_FILE") or None
        )
        since = settings.get("IOC_SINCE")
        self.since = dt.datetime.fromisoformat(since) if since else None

    def _process(self, record: dict[str, Any], spider: Any) -> dict[str, Any]:
        if not record.get("title"):
            raise self.fail(record, spider, "no title found")
        if len(record.get("text") or "") < MIN_TEXT_CHARS:
            raise self.fail(
                record, spider, f"body too short ({len(record.get('text') or '')} characters)"
            )
        published = record.get("published")
        if isinstance(published, str):
            published = dt.datetime.fromisoformat(published)
            record["published"] = published
        if self.since and published and published < self.since:
            self.crawler.stats.inc_value("ioc/skipped/older_than_since")
            raise DropItem(f"published {published.isoformat()} before --since ({record['url']})")
        full = "\n".join(x for x in (record.get("title"), record.get("lead"), record["text"]) if x)
        record["content_hash"] = content_hash(record["text"])
        record["simhash"] = simhash(full)
        relevant, terms, places = self.relevance.assess(
            full, published.isoformat() if published else None
        )
        record["relevant"] = relevant
        record["matched_terms"] = terms
        record["places"] = places
        if isinstance(record.get("published"), dt.datetime):
            record["published"] = record["published"].isoformat()
        return record


class DedupeStage(_Stage):
    """300: same canonical URL → update; same content (hash) or near-duplicate (SimHash
    prefilter + shingle Jaccard ≥ threshold) → linked to the first copy via ``duplicate_of``
    (stored, not dropped).

    Copies within one crawl are found in memory (the first copy may still be on its way to
    the database: the store resolves ``duplicate_of_url`` to its id); copies of articles
    from earlier crawls are found in the database, on the database thread.
    """

    stage = "dedupe"

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.max_distance = crawler.settings.getint("IOC_SIMHASH_MAX_DISTANCE", 16)
        self.threshold = crawler.settings.getfloat("IOC_NEAR_DUPLICATE_THRESHOLD", 0.8)
        self.memory_size = crawler.settings.getint("IOC_DEDUPE_MEMORY", 10000)
        self.by_hash: dict[str, str] = {}
        # articles stored by this crawl are compared in memory; the database lookup covers
        # the earlier crawls (their first copies were fetched before this one started)
        self.crawl_start = dt.datetime.now(dt.UTC)
        self.recent: deque[tuple[int, str, str]] = deque(maxlen=self.memory_size)

    @staticmethod
    def _full(record: dict[str, Any]) -> str:
        return "\n".join(x for x in (record.get("title"), record.get("lead"), record["text"]) if x)

    def _in_memory(self, record: dict[str, Any]) -> tuple[str, str, float] | None:
        canonical = record["canonical_url"]
        first = self.by_hash.get(record["content_hash"])
        if first and first != canonical:
            return "exact", first, 1.0
        fingerprint = record["simhash"]
        near = sorted(
            (hamming(fingerprint, h), url, full) for h, url, full in self.recent if url != canonical
        )
        mine = None
        for dist, url, full in near[:10]:
            if dist > self.max_distance:
                break
            mine = mine or shingle_set(self._full(record))
            similarity = jaccard(mine, shingle_set(full))
            if similarity >= self.threshold:
                return "near", url, similarity
        return None

    def _remember(self, record: dict[str, Any]) -> None:
        self.by_hash.setdefault(record["content_hash"], record["canonical_url"])
        self.recent.append((record["simhash"], record["canonical_url"], self._full(record)))
        if len(self.by_hash) > 4 * self.memory_size:
            self.by_hash.clear()

    def _mark(self, record: dict[str, Any], kind: str, similarity: float) -> None:
        record.setdefault("extra", {})["duplicate"] = {
            "kind": kind,
            "similarity": round(similarity, 3),
        }
        self.crawler.stats.inc_value(f"ioc/duplicates/{kind}")

    def process_item(self, record: dict[str, Any], spider: Any):
        found = self._in_memory(record)
        if found:
            kind, url, similarity = found
            record["duplicate_of_url"] = url
            self._mark(record, kind, similarity)
            return record
        self._remember(record)
        store: ArticleStore | None = getattr(spider, "store", None)
        if store is None:
            return record
        started = time.perf_counter()

        def lookup() -> tuple[str, int, float] | None | Exception:
            t0 = time.perf_counter()
            try:
                return store.find_duplicate(
                    record["canonical_url"],
                    record["content_hash"],
                    record["simhash"],
                    full_text=self._full(record),
                    threshold=self.threshold,
                    max_distance=self.max_distance,
                    fetched_before=self.crawl_start,
                )
            except Exception as exc:  # noqa: BLE001 - classified on the reactor thread
                return exc
            finally:
                self.crawler.stats.inc_value(
                    "ioc/seconds/dedupe_db", round(time.perf_counter() - t0, 6)
                )

        def done(found: Any) -> dict[str, Any]:
            self.crawler.stats.inc_value(
                "ioc/seconds/dedupe", round(time.perf_counter() - started, 6)
            )
            if isinstance(found, Exception):
                if not is_outage(found):
                    raise self.fail(record, spider, f"duplicate lookup failed: {found}")
                record.setdefault("extra", {})["dedupe"] = "skipped: database unavailable"
            elif found:
                kind, first_id, similarity = found
                record["duplicate_of"] = first_id
                self._mark(record, kind, similarity)
            return record

        return in_db_thread(self.crawler, lookup, name="dedupe").addCallback(done)


class ScoreStage(_Stage):
    """400: sentiment, topic and places from ``nlp.scoring`` (switched off until it exists).

    Uses ``nlp.scoring.load_scorer(model_path, gazetteer_path, use_ner)`` once per crawl and
    ``Scorer.score_records`` per item. An article the scorer declines ("not_scored") or fails
    on is stored unscored, the reason kept in ``extra`` (and a dead letter for errors).
    """

    stage = "score"

    def __init__(self, crawler: Crawler, scorer: Any) -> None:
        super().__init__(crawler)
        self.scorer = scorer
        self.model_version = str(getattr(scorer, "model_version", None) or "nlp")
        self.max_consecutive_errors = crawler.settings.getint("IOC_SCORER_MAX_ERRORS", 5)
        self.consecutive_errors = 0
        self.disabled_reason: str | None = None
        self.batch_size = crawler.settings.getint("IOC_SCORER_BATCH", 16)
        self.max_wait = crawler.settings.getfloat("IOC_SCORER_MAX_WAIT", 0.5)
        self.pending: list[tuple[dict[str, Any], Any, Any]] = []
        self._timer: Any = None
        self._pool: Any = None

    @classmethod
    def from_crawler(cls, crawler: Crawler):
        settings = crawler.settings
        if not settings.getbool("IOC_SCORING", True):
            raise NotConfigured("scoring switched off (IOC_CRAWL_SCORING=false)")
        from nlp.scoring import load_scorer

        spec = settings.get("IOC_SCORER")
        try:
            state = settings.get("IOC_SCORER_STATE_DIR")
            scorer = load_scorer(
                Path(spec) if spec else None,
                Path(settings.get("IOC_GAZETTEER")) if settings.get("IOC_GAZETTEER") else None,
                use_ner=settings.getbool("IOC_SCORER_NER", True),
                state_dir=Path(state) if state else None,
                use_encoder=settings.getbool("IOC_SCORER_ENCODER", True),
            )
        except Exception as exc:  # noqa: BLE001 - no model → stage off, said in the log
            log.warning("scoring switched off: no NLP scorer could be loaded (%s)", exc)
            raise NotConfigured(f"no NLP scorer could be loaded: {exc}") from exc
        log.info("scoring with %s", getattr(scorer, "model_version", scorer))
        return cls(crawler, scorer)

    # Articles are scored in batches (the model scores a batch in one matrix: ~3x cheaper
    # per article) on a thread of their own, while the reactor keeps crawling.
    def process_item(self, record: dict[str, Any], spider: Any):
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred

        if self.disabled_reason:
            record.setdefault("extra", {})["not_scored"] = self.disabled_reason
            return record
        d: Deferred = Deferred()
        self.pending.append((record, d, spider))
        if len(self.pending) >= self.batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = reactor.callLater(self.max_wait, self._flush)
        return d

    def _flush(self) -> None:
        from twisted.internet import reactor
        from twisted.internet.threads import deferToThreadPool
        from twisted.python.threadpool import ThreadPool

        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        batch, self.pending = self.pending, []
        if not batch:
            return
        if self._pool is None:
            self._pool = ThreadPool(minthreads=1, maxthreads=1, name="ioc-score")
            self._pool.start()
            reactor.addSystemEventTrigger("before", "shutdown", self._pool.stop)
        queries = [
            {
                "id": r["canonical_url"],
                "title": r.get("title"),
                "lead": r.get("lead"),
                "text": r.get("text"),
                "published": r.get("published"),
            }
            for r, _, _ in batch
        ]
        started = time.perf_counter()

        def score() -> list[Any] | Exception:
            try:
                return self.scorer.score_records(queries)
            except Exception as exc:  # noqa: BLE001 - handled per record below
                return exc

        def done(results: list[Any] | Exception) -> None:
            self.crawler.stats.inc_value(
                "ioc/seconds/score", round(time.perf_counter() - started, 6)
            )
            for i, (record, d, spider) in enumerate(batch):
                scored = results if isinstance(results, Exception) else results[i]
                try:
                    d.callback(self._apply(record, scored, spider))
                except Exception as exc:  # noqa: BLE001 - never leave an item hanging
                    d.errback(exc)

        deferToThreadPool(reactor, self._pool, score).addCallback(done)

    def _apply(self, record: dict[str, Any], scored: Any, spider: Any) -> dict[str, Any]:
        if isinstance(scored, Exception):
            self.consecutive_errors += 1
            self.fail(record, spider, f"scoring failed: {scored!r}")
            record.setdefault("extra", {})["not_scored"] = f"scoring failed: {scored}"
            if self.consecutive_errors >= self.max_consecutive_errors and not self.disabled_reason:
                # a broken model: stop asking it (articles are still stored, unscored)
                self.disabled_reason = (
                    f"scoring switched off after {self.consecutive_errors} consecutive "
                    f"errors (last: {scored!r})"
                )
                log.error("%s", self.disabled_reason)
            return record
        self.consecutive_errors = 0
        if scored.get("error"):
            self.fail(record, spider, f"scorer refused the record: {scored['error']}")
        if scored.get("not_scored") or scored.get("error"):
            record.setdefault("extra", {})["not_scored"] = (
                scored.get("not_scored") or scored["error"]
            )
            self.crawler.stats.inc_value("ioc/not_scored")
            return record
        record["sentiment"] = scored.get("sentiment")
        record["topic"] = scored.get("topic")
        record["topic_scores"] = scored.get("topic_scores")
        if scored.get("places") is not None:
            record["places"] = scored["places"]
        record["model_version"] = scored.get("model_version") or self.model_version
        self.crawler.stats.inc_value("ioc/scored")
        count("scored", record.get("source_name"))
        return record

    def close_spider(self, spider: Any) -> None:
        if self._pool is not None and self._pool.started:
            self._pool.stop()


class StoreStage(_Stage):
    """500: idempotent upsert, one transaction per item; spool + retry on a database outage."""

    stage = "store"

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        jobdir = crawler.settings.get("IOC_STATE_JOBDIR") or crawler.settings.get("JOBDIR")
        self.spool = Spool(Path(jobdir or ".") / "spool.jsonl") if jobdir else None
        self.retry_every = crawler.settings.getfloat("IOC_SPOOL_RETRY_SECONDS", 10.0)
        self._next_retry = 0.0
        self.outage = False

    def open_spider(self, spider: Any) -> None:
        store = getattr(spider, "store", None)
        spider.failure_sink = self._failure_sink(spider)
        if store is not None and self.spool is not None and len(self.spool):
            try:
                written = self.spool.drain(store)
                log.info("wrote %d spooled items from the previous run", written)
            except Exception as exc:  # noqa: BLE001
                log.warning("spool not drained yet: %s", exc)

    def close_spider(self, spider: Any) -> None:
        store = getattr(spider, "store", None)
        if store is not None and self.spool is not None and len(self.spool):
            try:
                self.spool.drain(store)
            except Exception as exc:  # noqa: BLE001
                log.warning("database still unavailable: %s", exc)
            left = len(self.spool)
            if left:
                log.warning(
                    "%d items wait in %s for the database; the next run writes them",
                    left,
                    self.spool.path,
                )
                self.crawler.stats.set_value("ioc/spooled_left", left)

    def _failure_sink(self, spider: Any):
        def sink(failure: dict[str, Any]) -> None:
            store = getattr(spider, "store", None)
            if store is None:
                log.warning("crawl failure (no database): %s", failure)
                return
            try:
                store.record_failure(**failure)
            except Exception as exc:  # noqa: BLE001
                if is_outage(exc) and self.spool is not None:
                    self.spool.append("failure", failure)
                else:
                    log.error("cannot record failure %s: %s", failure.get("url"), exc)

        return sink

    def process_item(self, record: dict[str, Any], spider: Any):
        if getattr(spider, "store", None) is None:
            return record
        started = time.perf_counter()

        def done(result: Any) -> Any:
            self.crawler.stats.inc_value(
                "ioc/seconds/store", round(time.perf_counter() - started, 6)
            )
            if isinstance(result, BaseException):
                raise result
            return result

        def work() -> Any:
            t0 = time.perf_counter()
            try:
                return self._process(record, spider)
            except Exception as exc:  # noqa: BLE001 - re-raised on the reactor thread
                return exc
            finally:
                self.crawler.stats.inc_value(
                    "ioc/seconds/store_db", round(time.perf_counter() - t0, 6)
                )

        return in_db_thread(self.crawler, work).addCallback(done)

    def _process(self, record: dict[str, Any], spider: Any) -> dict[str, Any]:
        store: ArticleStore | None = getattr(spider, "store", None)
        if store is None:
            return record
        payload = {k: v for k, v in record.items() if k != "body"}
        if self.spool is not None and self.outage and time.monotonic() < self._next_retry:
            self.spool.append("article", payload)
            self.crawler.stats.inc_value("ioc/spooled")
            count("items", record.get("source_name"), outcome="spooled")
            return record
        try:
            if self.spool is not None and self.outage:
                self.spool.drain(store)
            article_id = store.upsert_article(payload)
            self.outage = False
        except Exception as exc:  # noqa: BLE001 - classified below
            if is_outage(exc) and self.spool is not None:
                if not self.outage:
                    log.error(
                        "database unavailable, spooling items to %s: %s",
                        self.spool.path,
                        str(exc).splitlines()[0],
                    )
                self.outage = True
                self._next_retry = time.monotonic() + self.retry_every
                self.spool.append("article", payload)
                self.crawler.stats.inc_value("ioc/spooled")
                count("items", record.get("source_name"), outcome="spooled")
                return record
            raise self.fail(record, spider, f"database rejected the article: {exc}") from exc
        record["id"] = article_id
        self.crawler.stats.inc_value("ioc/stored")
        count("items", record.get("source_name"), outcome="stored")
        return record
