"""``ioc crawl``: crawl the configured outlets, extract saved pages.

    ioc crawl run [--site NAME ...] [--since DATE]
    ioc crawl extract FILE [FILE ...] [--output FILE.jsonl]
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from crawler.errors import CrawlerError, ExtractionError


def _since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"'{value}' is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[+07:00]."
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    return parsed


@click.group()
def crawl() -> None:
    """Crawl Vietnamese news outlets into the database; extract saved pages."""


@crawl.command("run")
@click.option("--site", "site_names", multiple=True, metavar="NAME",
              help="Outlet name from the sites file (repeatable); default: all enabled.")
@click.option("--since", "since", metavar="DATE",
              help="Skip articles published before DATE (YYYY-MM-DD, local time +07:00).")
@click.option("--sites-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Sites file (default: IOC_CRAWL_SITES_FILE or the shipped crawler/sites.yaml).")
@click.option("--job", default="default", show_default=True,
              help="Job name: state kept in <state_dir>/crawl/jobs/JOB (resume after a kill).")
@click.option("--distributed", is_flag=True,
              help="Share the request queue and dupefilter through Redis (IOC_CRAWL_REDIS_URL).")
@click.option("--redis-url", help="Redis URL for --distributed (overrides IOC_CRAWL_REDIS_URL).")
@click.option("--redis-keys", default="ioc:news", show_default=True,
              help="Key prefix of the shared queue/dupefilter (one per crawl campaign).")
@click.option("--http-cache/--no-http-cache", default=None,
              help="Scrapy HTTP cache under the state dir (development).")
@click.option("--no-store", is_flag=True, help="Fetch and extract only; write nothing.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def run_command(site_names, since, sites_file, job, distributed, redis_url, redis_keys,
                http_cache, no_store, log_level) -> None:
    """Crawl the configured outlets (feeds, sitemaps, section pages) into the database."""
    from crawler.run import run_crawl
    from crawler.settings import CrawlSettings
    from crawler.sites import load_sites

    settings = CrawlSettings()
    updates = {}
    if sites_file:
        updates["sites_file"] = sites_file
    if redis_url:
        updates["redis_url"] = redis_url
    if http_cache is not None:
        updates["http_cache"] = http_cache
    settings = settings.model_copy(update=updates)
    sites = load_sites(settings.sites_file).select(list(site_names))
    if not sites:
        raise CrawlerError(f"No enabled site in {settings.sites_file}.")
    obj = click.get_current_context().obj
    state_dir = Path(getattr(obj, "state_dir", None) or os.environ.get("IOC_STATE_DIR", ".state"))
    engine = None if no_store else obj.engine()
    if engine is not None:
        from gis.db.session import check_connection

        check_connection(obj.database_url())
    click.echo(f"crawling {', '.join(s.name for s in sites)}"
               + (f" since {_since(since).isoformat()}" if since else ""), err=True)
    stats = run_crawl(
        sites, settings, state_dir, engine=engine, since=_since(since), job=job,
        distributed=distributed, redis_keys=redis_keys, log_level=log_level,
    )
    summary = {k: v for k, v in stats.items() if k.startswith(("ioc/", "item_", "finish_reason",
                                                                 "downloader/response_count"))}
    click.echo(json.dumps(summary, default=str, sort_keys=True), err=True)
    if stats.get("finish_reason") not in (None, "finished"):
        sys.exit(3)


@crawl.command("extract")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write JSON lines here (default: standard output).")
@click.option("--sites-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Sites file whose selectors apply to pages of known outlets.")
def extract_command(files, output, sites_file) -> None:
    """Extract saved pages (.html or .html.gz): one JSON line per file.

    Fields: source, url, title, published (ISO 8601 with offset), author, lead, text, language.
    A page that cannot be read gets a line with an "error" field; the exit code is then 1.
    """
    from crawler.extraction import extract_file
    from crawler.settings import CrawlSettings
    from crawler.sites import load_sites

    sites = load_sites(sites_file or CrawlSettings().sites_file)
    lines, failed = [], 0
    with click.progressbar(files, label="extracting", file=sys.stderr,
                           show_pos=True) if len(files) > 20 else _nullbar(files) as bar:
        for path in bar:
            try:
                record = extract_file(path, sites=sites).to_record(str(path))
            except ExtractionError as exc:
                failed += 1
                click.echo(f"{path}: {exc}", err=True)
                record = {"source": str(path), "url": None, "title": None, "published": None,
                          "author": None, "lead": None, "text": None, "language": None,
                          "error": str(exc)}
            lines.append(json.dumps(record, ensure_ascii=False))
    data = "\n".join(lines) + "\n"
    if output:
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(data, encoding="utf-8")
        tmp.replace(output)
    else:
        sys.stdout.write(data)
    if failed:
        sys.exit(1)


class _nullbar:
    def __init__(self, items):
        self.items = items

    def __enter__(self):
        return self.items

    def __exit__(self, *exc):
        return False
