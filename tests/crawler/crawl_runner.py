"""Runs one crawl in its own process (Twisted's reactor cannot restart inside pytest).

    python tests/crawler/crawl_runner.py CONFIG.json

CONFIG: {"sites_yaml": text, "base": url, "state_dir": path, "database_url": url|null,
         "job": str, "since": iso|null, "distributed": bool, "redis_url": url|null,
         "settings": {CrawlSettings overrides}, "scrapy": {Scrapy overrides}}
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from crawler.run import run_crawl
    from crawler.settings import CrawlSettings
    from crawler.sites import parse_sites

    conf = json.loads(Path(sys.argv[1]).read_text())
    data = yaml.safe_load(conf["sites_yaml"].replace("{base}", conf["base"]))
    sites = parse_sites(data, "test sites").sites
    settings = CrawlSettings(
        **{
            "download_delay": 0.0,
            "autothrottle": False,
            "redis_url": conf.get("redis_url"),
            **conf.get("settings", {}),
        }
    )
    engine = None
    if conf.get("database_url"):
        from gis.db.session import make_engine

        engine = make_engine(conf["database_url"], connect_args={"connect_timeout": 2})
    since = dt.datetime.fromisoformat(conf["since"]) if conf.get("since") else None
    stats = run_crawl(
        sites,
        settings,
        Path(conf["state_dir"]),
        engine=engine,
        since=since,
        job=conf.get("job", "test"),
        distributed=conf.get("distributed", False),
        redis_keys=conf.get("redis_keys", "ioc:test"),
        extra_settings=conf.get("scrapy"),
        log_level=conf.get("log_level", "INFO"),
    )
    out = {k: v for k, v in stats.items() if isinstance(v, int | float | str)}
    Path(
        conf["state_dir"], f"stats-{conf.get('job', 'test')}-{conf.get('tag', '')}.json"
    ).write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
