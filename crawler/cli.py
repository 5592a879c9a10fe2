"""``ioc crawl``: crawl the configured outlets, extract saved pages; ``ioc posts``: import
citizens' posts.

    ioc crawl run [--site NAME ...] [--since DATE]
    ioc crawl extract FILE [FILE ...] [--output FILE.jsonl]
    ioc posts import FILE [--source NAME] [--format jsonl|csv] [--no-score]
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
@click.option(
    "--site",
    "site_names",
    multiple=True,
    metavar="NAME",
    help="Outlet name from the sites file (repeatable); default: all enabled.",
)
@click.option(
    "--since",
    "since",
    metavar="DATE",
    help="Skip articles published before DATE (YYYY-MM-DD, local time +07:00).",
)
@click.option(
    "--sites-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sites file (default: IOC_CRAWL_SITES_FILE or the shipped crawler/sites.yaml).",
)
@click.option(
    "--job",
    default="default",
    show_default=True,
    help="Job name: state kept in <state_dir>/crawl/jobs/JOB (resume after a kill).",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Share the request queue and dupefilter through Redis (IOC_CRAWL_REDIS_URL).",
)
@click.option("--redis-url", help="Redis URL for --distributed (overrides IOC_CRAWL_REDIS_URL).")
@click.option(
    "--redis-keys",
    default="ioc:news",
    show_default=True,
    help="Key prefix of the shared queue/dupefilter (one per crawl campaign).",
)
@click.option(
    "--http-cache/--no-http-cache",
    default=None,
    help="Scrapy HTTP cache under the state dir (development).",
)
@click.option("--no-store", is_flag=True, help="Fetch and extract only; write nothing.")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
)
def run_command(
    site_names,
    since,
    sites_file,
    job,
    distributed,
    redis_url,
    redis_keys,
    http_cache,
    no_store,
    log_level,
) -> None:
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
    click.echo(
        f"crawling {', '.join(s.name for s in sites)}"
        + (f" since {_since(since).isoformat()}" if since else ""),
        err=True,
    )
    stats = run_crawl(
        sites,
        settings,
        state_dir,
        engine=engine,
        since=_since(since),
        job=job,
        distributed=distributed,
        redis_keys=redis_keys,
        log_level=log_level,
    )
    summary = {
        k: v
        for k, v in stats.items()
        if k.startswith(("ioc/", "item_", "finish_reason", "downloader/response_count"))
    }
    click.echo(json.dumps(summary, default=str, sort_keys=True), err=True)
    if stats.get("finish_reason") not in (None, "finished"):
        sys.exit(3)


@crawl.command("extract")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write JSON lines here (default: standard output).",
)
@click.option(
    "--sites-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sites file whose selectors apply to pages of known outlets.",
)
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
    with (
        click.progressbar(files, label="extracting", file=sys.stderr, show_pos=True)
        if len(files) > 20
        else _nullbar(files) as bar
    ):
        for path in bar:
            try:
                record = extract_file(path, sites=sites).to_record(str(path))
            except ExtractionError as exc:
                failed += 1
                click.echo(f"{path}: {exc}", err=True)
                record = {
                    "source": str(path),
                    "url": None,
                    "title": None,
                    "published": None,
                    "author": None,
                    "lead": None,
                    "text": None,
                    "language": None,
                    "error": str(exc),
                }
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


# --------------------------------------------------------------------------------------------
# ioc posts
# --------------------------------------------------------------------------------------------


@click.group("posts")
def posts() -> None:
    """Citizens' posts and comments (social-listening exports): import, score, place."""


@posts.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--source",
    "default_source",
    metavar="NAME",
    help="Platform/source for records that do not name one (e.g. facebook).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    help="File format (default: from the extension, else from the content).",
)
@click.option("--no-score", is_flag=True, help="Store without sentiment (places are still found).")
@click.option(
    "--strip-html",
    is_flag=True,
    help="Turn HTML left in a text into plain text instead of refusing the record.",
)
@click.option(
    "--no-ner", is_flag=True, help="Place names without underthesea's NER check (faster)."
)
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1, 10_000))
def import_command(file, default_source, fmt, no_score, strip_html, no_ner, batch_size) -> None:
    """Import posts from FILE (JSON lines, a JSON array or CSV): checked, scored as genre
    "post", placed on communes and stored next to articles.

    Fields: text, url, author, published, source, and their usual export names (message,
    content, body; link, permalink; user, username; created_time, date, timestamp; platform,
    network, site): see docs/posts.md. A bad record is reported as FILE:LINE: reason and
    skipped. Everything is written in one transaction; importing the same file again updates
    the posts instead of duplicating them. Exit 1 when every record failed, 2 when the file
    cannot be read.
    """
    from crawler.posts import import_posts, read_records
    from nlp.settings import NLPSettings

    read_records(file, fmt)  # an unreadable file fails here, before any model is loaded
    obj = click.get_current_context().obj
    engine = obj.engine()
    from gis.db.session import check_connection

    check_connection(obj.database_url())
    settings = NLPSettings()
    scorer = finder = None
    if no_score:
        from nlp.places import PlaceFinder, load_gazetteer

        finder = PlaceFinder(load_gazetteer(settings.gazetteer_path), use_ner=not no_ner)
    else:
        from nlp.cli import resolve_model_path
        from nlp.scoring import load_scorer

        state_dir = Path(
            getattr(obj, "state_dir", None) or os.environ.get("IOC_STATE_DIR", ".state")
        )
        scorer = load_scorer(
            resolve_model_path(None, settings, state_dir),
            settings.gazetteer_path,
            use_ner=not no_ner,
            state_dir=state_dir,  # the encoder's vector cache: a re-import costs no encoding
            use_encoder=settings.use_encoder,
        )

    def on_error(where: str, reason: str) -> None:
        click.echo(f"{file}:{where.removeprefix('line ')}: {reason}", err=True)

    shown = [0]

    def on_batch(so_far) -> None:  # progress on long imports, about every 1,000 records
        if so_far.records - shown[0] >= 1000:
            shown[0] = so_far.records
            click.echo(
                f"posts import: {so_far.records} records read, {so_far.stored} stored, "
                f"{so_far.failed} refused",
                err=True,
            )

    try:
        report = import_posts(
            engine,
            file,
            fmt=fmt,
            default_source=default_source,
            scorer=scorer,
            place_finder=finder,
            strip_html=strip_html,
            batch_size=batch_size,
            on_error=on_error,
            on_batch=on_batch,
        )
    except CrawlerError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback: nothing was written
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        click.echo(
            f"error: the import of {file} stopped ({type(exc).__name__}: "
            f"{reason[0] if reason else ''}); nothing was written",
            err=True,
        )
        sys.exit(1)
    click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    if report.records == 0:
        click.echo(f"error: {file} contains no posts", err=True)
        sys.exit(2)
    if report.stored == 0:
        click.echo(
            f"error: none of the {report.records} records of {file} could be imported", err=True
        )
        sys.exit(1)
