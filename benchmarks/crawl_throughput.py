"""Crawl throughput: a generated local mirror of a few thousand pages, extraction on.

Usage::

    .venv/bin/python benchmarks/crawl_throughput.py [--pages 3000] [--database-url URL]

Renders synthetic articles (crawler.mirror.synthetic_articles) into a temp folder, serves
them on 127.0.0.1, crawls them with the real spider and pipelines (extract, clean with the
gazetteer, dedupe/store only with --database-url) in a child process, and prints pages per
second (article pages crawled and extracted / wall time) and the child's peak memory (RSS).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crawler.localsite import LocalSite  # noqa: E402
from crawler.mirror import synthetic_articles, write_mirror  # noqa: E402

SITES = """
version: 1
sites:
  - name: bench
    title: Bench mirror
    homepage: "{base}/"
    scope: provincial
    sitemaps: ["{base}/sitemap-news.xml"]
    allowed_domains: ["127.0.0.1"]
    article_url_patterns: ['/tin-\\d+\\.html$']
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument(
        "--database-url",
        default=None,
        help="Also dedupe and store into this PostGIS (default: extract only).",
    )
    parser.add_argument(
        "--embedded-db",
        action="store_true",
        help="Store into a throwaway embedded PostGIS (started and removed here).",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--scorer",
        default=None,
        help="nlp model file to score with (default: nlp's newest shipped model).",
    )
    parser.add_argument("--no-scoring", action="store_true", help="Switch the score stage off.")
    parser.add_argument("--no-ner", action="store_true", help="Scorer without underthesea NER.")
    args = parser.parse_args()
    if args.embedded_db:
        with _embedded_database() as url:
            args.database_url = url
            _run(args)
    else:
        _run(args)


@contextlib.contextmanager
def _embedded_database():
    from gis.db import migrate
    from gis.db.embedded import EmbeddedCluster

    state = Path(tempfile.mkdtemp(prefix="ioc-bench-db-"))
    os.chmod(state, 0o755)
    cluster = EmbeddedCluster(state, db_name="ioc_bench")
    try:
        cluster.initialise()
        cluster.start()
        cluster.ensure_database()
        migrate.upgrade(cluster.url())
        yield cluster.url()
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)


def _run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ioc-crawl-bench-") as tmp:
        root = Path(tmp) / "site"
        write_mirror(root, synthetic_articles(args.pages), per_page=50)
        with LocalSite(root) as site:
            conf = {
                "sites_yaml": SITES,
                "base": site.base,
                "state_dir": str(Path(tmp) / "state"),
                "database_url": args.database_url,
                "job": "bench",
                "settings": {
                    "download_delay": 0.0,
                    "autothrottle": False,
                    "obey_robots": True,
                    "concurrency": args.concurrency,
                    "concurrency_per_domain": args.concurrency,
                    "scoring": not args.no_scoring,
                    "scorer": args.scorer,
                    "scorer_ner": not args.no_ner,
                },
                "stats_out": str(Path(tmp) / "stats.json"),
                "log_level": "WARNING",
            }
            conf_path = Path(tmp) / "conf.json"
            conf_path.write_text(json.dumps(conf))
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "crawler.run", str(conf_path)],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                sys.exit("crawl failed:\n" + proc.stderr[-3000:])
            stats = json.loads((Path(tmp) / "stats.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    scraped = stats.get("item_scraped_count", 0)
    responses = stats.get("downloader/response_count", 0)
    print(
        f"pages generated: {args.pages}; responses: {responses}; articles extracted: {scraped}"
        f"; dropped: {stats.get('item_dropped_count', 0)}"
    )
    print(f"wall time: {elapsed:.1f} s (includes process start-up)")
    print(
        f"throughput: {scraped / elapsed:.1f} article pages/s extracted "
        f"({responses / elapsed:.1f} responses/s)"
    )
    print(f"peak memory (crawler process RSS): {peak_mb:.0f} MB")
    from gis.db.session import redact

    print(f"storage: {'PostGIS ' + redact(args.database_url) if args.database_url else 'off'}")
    stages = {k.split("/")[-1]: v for k, v in stats.items() if k.startswith("ioc/seconds/")}
    if stages:
        print(
            "pipeline seconds per article: "
            + ", ".join(f"{k} {v / max(scraped, 1) * 1000:.1f} ms" for k, v in stages.items())
        )
    print(
        f"scored: {stats.get('ioc/scored', 0)}; stored: {stats.get('ioc/stored', 0)}; "
        f"near/exact duplicates linked: "
        f"{stats.get('ioc/duplicates/near', 0)}/{stats.get('ioc/duplicates/exact', 0)}"
    )


if __name__ == "__main__":
    main()
