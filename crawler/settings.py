"""Settings of the crawler, read at the edges (CLI, demo) and passed down.

Environment prefix ``IOC_CRAWL_``; library functions never read the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SITES_FILE = PACKAGE_DIR / "sites.yaml"
DEFAULT_GAZETTEER = PACKAGE_DIR.parent / "data" / "admin" / "gazetteer_hanam.json"
DEFAULT_USER_AGENT = (
    "ioc-monitor-crawler/0.1 (+provincial operations centre news monitor; "
    "contact: ioc-admin@localhost)"
)


class CrawlSettings(BaseSettings):
    """How the crawler behaves: politeness, state, optional features."""

    model_config = SettingsConfigDict(env_prefix="IOC_CRAWL_", env_file=".env", extra="ignore")

    sites_file: Path = Field(default=DEFAULT_SITES_FILE, description="The outlets (YAML).")
    gazetteer: Path = Field(default=DEFAULT_GAZETTEER, description="Place names for relevance.")
    keywords_file: Path | None = Field(
        default=None, description="Extra keyword rules (YAML: include/exclude lists)."
    )
    user_agent: str = DEFAULT_USER_AGENT
    obey_robots: bool = True
    download_delay: float = Field(default=1.0, description="Seconds between requests per domain.")
    concurrency_per_domain: int = 2
    concurrency: int = 16
    autothrottle: bool = True
    autothrottle_target_concurrency: float = 1.0
    download_timeout: float = 30.0
    download_maxsize: int = Field(default=16 * 1024 * 1024, description="Bytes; bigger is skipped.")
    http_cache: bool = Field(default=False, description="Scrapy HTTP cache (development).")
    max_pages_per_section: int = Field(default=3, description="Pagination depth of section pages.")
    redis_url: str | None = Field(
        default=None, description="scrapy-redis: shared queue and dupefilter (distributed mode)."
    )
    scorer: str | None = Field(
        default=None, description="Model file for nlp.scoring.load_scorer (unset = newest)."
    )
    scoring: bool = Field(default=True, description="Score articles when nlp is available.")
    scorer_ner: bool = Field(default=True, description="Let the scorer use underthesea NER.")
    near_duplicate_threshold: float = Field(default=0.8, description="MinHash Jaccard threshold.")
