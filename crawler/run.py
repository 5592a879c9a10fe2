"""Running a crawl: Scrapy settings from :class:`CrawlSettings`, then one CrawlerProcess.

State (under ``<state_dir>/crawl/``): ``jobs/<job>/`` (Scrapy JOBDIR: pending requests and
the persistent dupefilter, so a killed crawl resumes; plus ``spool.jsonl`` for items waiting
for the database) and ``httpcache/`` (development HTTP cache, off by default).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.settings import CrawlSettings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from crawler.sites import Site

log = logging.getLogger(__name__)


class QuietLogFormatter:
    """Scrapy's log formatter without item bodies in 'Dropped'/'Scraped' lines."""

    def __new__(cls, *args, **kwargs):
        from scrapy.logformatter import LogFormatter

        class _Formatter(LogFormatter):
            def dropped(self, item, exception, response, spider):
                out = super().dropped(item, exception, response, spider)
                out["msg"] = "Dropped: %(exception)s"
                return out

            def scraped(self, item, response, spider):
                out = super().scraped(item, response, spider)
                out["msg"] = "Scraped from %(src)s"
                return out

        return _Formatter(*args, **kwargs)

    @classmethod
    def from_crawler(cls, crawler):
        return cls()


PIPELINES = {
    "crawler.pipelines.ExtractStage": 100,
    "crawler.pipelines.CleanStage": 200,
    "crawler.pipelines.DedupeStage": 300,
    "crawler.pipelines.ScoreStage": 400,
    "crawler.pipelines.StoreStage": 500,
}


def job_dir(state_dir: Path, job: str) -> Path:
    return Path(state_dir) / "crawl" / "jobs" / job


def _nlp_encoder_on() -> bool:
    """The ``IOC_NLP_ENCODER`` setting (nlp.settings), passed to the score stage."""
    from nlp.settings import NLPSettings

    return NLPSettings().use_encoder


def scrapy_settings(
    settings: CrawlSettings,
    state_dir: Path,
    sites: list[Site],
    job: str = "default",
    since: dt.datetime | None = None,
    distributed: bool = False,
    redis_keys: str = "ioc:news",
    log_level: str = "INFO",
) -> dict[str, Any]:
    """The Scrapy settings of a crawl."""
    jobdir = job_dir(state_dir, job)
    jobdir.mkdir(parents=True, exist_ok=True)
    slots: dict[str, dict[str, Any]] = {}
    for site in sites:
        if site.download_delay is None and site.concurrency is None:
            continue
        for domain in site.allowed_domains:
            slot: dict[str, Any] = {}
            if site.download_delay is not None:
                slot["delay"] = site.download_delay
            if site.concurrency is not None:
                slot["concurrency"] = site.concurrency
            slots[domain.split(":")[0]] = slot
    out: dict[str, Any] = {
        "BOT_NAME": "ioc-monitor",
        "USER_AGENT": settings.user_agent,
        "ROBOTSTXT_OBEY": settings.obey_robots,
        "AUTOTHROTTLE_ENABLED": settings.autothrottle,
        "AUTOTHROTTLE_START_DELAY": max(settings.download_delay, 0.0),
        "AUTOTHROTTLE_MAX_DELAY": 30.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": settings.autothrottle_target_concurrency,
        "DOWNLOAD_DELAY": settings.download_delay,
        "RANDOMIZE_DOWNLOAD_DELAY": True,
        "CONCURRENT_REQUESTS": settings.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": settings.concurrency_per_domain,
        "DOWNLOAD_SLOTS": slots,
        "DOWNLOAD_TIMEOUT": settings.download_timeout,
        "DOWNLOAD_MAXSIZE": settings.download_maxsize,
        "DOWNLOAD_WARNSIZE": settings.download_maxsize // 2,
        "RETRY_ENABLED": True,
        "RETRY_TIMES": 2,
        "REDIRECT_MAX_TIMES": 5,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_FORMATTER": "crawler.run.QuietLogFormatter",
        "LOG_LEVEL": log_level,
        "ITEM_PIPELINES": dict(PIPELINES),
        "HTTPCACHE_ENABLED": settings.http_cache,
        "HTTPCACHE_DIR": str(Path(state_dir) / "crawl" / "httpcache"),
        "HTTPCACHE_EXPIRATION_SECS": 6 * 3600,
        "HTTPCACHE_IGNORE_HTTP_CODES": [500, 502, 503, 504, 429],
        "IOC_GAZETTEER": str(settings.gazetteer),
        "IOC_KEYWORDS_FILE": str(settings.keywords_file) if settings.keywords_file else None,
        "IOC_SINCE": since.isoformat() if since else None,
        "IOC_SCORING": settings.scoring,
        "IOC_NEAR_DUPLICATE_THRESHOLD": settings.near_duplicate_threshold,
        "IOC_SCORER": settings.scorer,
        "IOC_SCORER_NER": settings.scorer_ner,
        "IOC_SCORER_STATE_DIR": str(state_dir),  # the encoder's vector cache (<state>/nlp-cache)
        "IOC_SCORER_ENCODER": _nlp_encoder_on(),
        "IOC_STATE_JOBDIR": str(jobdir),
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    }
    if distributed:
        if not settings.redis_url:
            from crawler.errors import CrawlerError

            raise CrawlerError("Distributed mode needs IOC_CRAWL_REDIS_URL (redis://host:port/db).")
        out.update(
            SCHEDULER="scrapy_redis.scheduler.Scheduler",
            DUPEFILTER_CLASS="scrapy_redis.dupefilter.RFPDupeFilter",
            SCHEDULER_PERSIST=True,
            SCHEDULER_QUEUE_KEY=f"{redis_keys}:requests",
            SCHEDULER_DUPEFILTER_KEY=f"{redis_keys}:dupefilter",
            SCHEDULER_IDLE_BEFORE_CLOSE=2,
            REDIS_URL=settings.redis_url,
        )
    else:
        out["JOBDIR"] = str(jobdir)
    return out


def _count_pages(crawler: Any) -> None:
    """ioc_crawl_pages_total{outlet} (crawler.metrics) for every response received."""
    from scrapy import signals

    from crawler.metrics import count

    def received(response: Any, request: Any, spider: Any) -> None:
        count("pages", request.meta.get("site"))

    crawler.signals.connect(received, signal=signals.response_received, weak=False)


def run_crawl(
    sites: list[Site],
    settings: CrawlSettings,
    state_dir: Path,
    engine: Engine | None = None,
    since: dt.datetime | None = None,
    job: str = "default",
    distributed: bool = False,
    redis_keys: str = "ioc:news",
    extra_settings: dict[str, Any] | None = None,
    log_level: str = "INFO",
) -> dict[str, Any]:
    """Crawl ``sites`` into the database of ``engine`` (no storing when None); block until
    done and return Scrapy's stats. One call per process (Twisted's reactor cannot restart)."""
    from scrapy.crawler import CrawlerProcess

    from crawler.spider import NewsSpider
    from crawler.store import ArticleStore

    scrapy_conf = scrapy_settings(
        settings,
        state_dir,
        sites,
        job=job,
        since=since,
        distributed=distributed,
        redis_keys=redis_keys,
        log_level=log_level,
    )
    scrapy_conf.update(extra_settings or {})
    process = CrawlerProcess(scrapy_conf, install_root_handler=True)
    crawler = process.create_crawler(NewsSpider)
    _count_pages(crawler)
    process.crawl(
        crawler,
        sites=sites,
        store=ArticleStore(engine) if engine is not None else None,
        since=since,
        max_pages_per_section=settings.max_pages_per_section,
        distributed=distributed,
    )
    process.start()
    return dict(crawler.stats.get_stats()) if crawler.stats else {}


def main(argv: list[str] | None = None) -> None:
    """``python -m crawler.run CONFIG.json``: one crawl in its own process (used by the demo
    and benchmarks, since Twisted's reactor cannot be restarted inside a process).

    CONFIG: {"sites_yaml": text with {base} placeholders | "sites_file": path, "base": url,
    "state_dir": path, "database_url": url | null, "job": str, "since": iso | null,
    "settings": {CrawlSettings fields}, "scrapy": {Scrapy settings}, "stats_out": path}
    """
    import json
    import sys

    import yaml

    from crawler.sites import load_sites, parse_sites

    conf = json.loads(Path((argv or sys.argv[1:])[0]).read_text(encoding="utf-8"))
    if conf.get("sites_yaml"):
        data = yaml.safe_load(conf["sites_yaml"].replace("{base}", conf.get("base", "")))
        sites = parse_sites(data, "sites").sites
    else:
        sites = load_sites(conf["sites_file"]).sites
    settings = CrawlSettings(**conf.get("settings", {}))
    engine = None
    if conf.get("database_url"):
        from gis.db.session import make_engine

        engine = make_engine(conf["database_url"], connect_args={"connect_timeout": 3})
    since = dt.datetime.fromisoformat(conf["since"]) if conf.get("since") else None
    stats = run_crawl(
        sites,
        settings,
        Path(conf["state_dir"]),
        engine=engine,
        since=since,
        job=conf.get("job", "default"),
        extra_settings=conf.get("scrapy"),
        log_level=conf.get("log_level", "WARNING"),
    )
    if conf.get("stats_out"):
        out = {k: v for k, v in stats.items() if isinstance(v, int | float | str)}
        Path(conf["stats_out"]).write_text(json.dumps(out, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
