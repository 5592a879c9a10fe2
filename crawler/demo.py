"""``ioc demo`` stage: crawl a local mirror of sample news into the database, scored by nlp
when its scorer is available.

The mirror's articles are our own text (data/news_mirror/articles.yaml); they are rendered
into outlet-like pages under the state dir and served on 127.0.0.1 for the crawl.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from crawler.localsite import LocalSite
from crawler.mirror import MirrorArticle, write_mirror

if TYPE_CHECKING:  # the demo context is duck-typed: crawler must not import ioc
    DemoContext = Any

TZ = dt.timezone(dt.timedelta(hours=7))


def load_mirror_articles(path: Path) -> list[MirrorArticle]:
    """The sample articles of a mirror definition (YAML list)."""
    items = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    out = []
    for i, item in enumerate(items):
        out.append(
            MirrorArticle(
                slug=item["slug"],
                title=item["title"],
                lead=item["lead"],
                paragraphs=list(item["paragraphs"]),
                author=item["author"],
                published=dt.datetime.strptime(item["date"], "%Y-%m-%d %H:%M").replace(tzinfo=TZ),
                section=item.get("section", "xa-hoi"),
                style="plain" if i % 4 == 3 else "ld",
            )
        )
    return out


def render_mirror(data_dir: Path, target: Path) -> list[MirrorArticle]:
    articles = load_mirror_articles(Path(data_dir) / "news_mirror" / "articles.yaml")
    return write_mirror(target, articles, site_title="Báo Mẫu Địa Phương", per_page=5)


def demo_stage(ctx: DemoContext) -> None:
    """Render the mirror, serve it on 127.0.0.1, crawl it into the database."""
    from sqlalchemy import text

    mirror_dir = Path(ctx.state_dir) / "crawl" / "news_mirror"
    articles = render_mirror(ctx.data_dir, mirror_dir)
    sites_yaml = (Path(ctx.data_dir) / "news_mirror" / "sites.yaml").read_text(encoding="utf-8")
    with LocalSite(mirror_dir) as site:
        ctx.echo(f"  serving {len(articles)} sample articles at {site.base}")
        stats_out = Path(ctx.state_dir) / "crawl" / "demo-stats.json"
        conf = {
            "sites_yaml": sites_yaml,
            "base": site.base,
            "state_dir": str(ctx.state_dir),
            "database_url": ctx.database_url,
            "job": f"demo-{site.port}",
            "settings": {
                "download_delay": 0.0,
                "autothrottle": False,
                "concurrency": 8,
                "concurrency_per_domain": 8,
            },
            "stats_out": str(stats_out),
            "log_level": "WARNING",
        }
        conf_path = Path(ctx.state_dir) / "crawl" / "demo-crawl.json"
        conf_path.write_text(json.dumps(conf), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "crawler.run", str(conf_path)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                "demo crawl failed: " + proc.stderr.strip().splitlines()[-1]
                if proc.stderr.strip()
                else "demo crawl failed"
            )
    stats = json.loads(stats_out.read_text()) if stats_out.exists() else {}
    with ctx.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) AS n, count(*) FILTER (WHERE relevant) AS relevant, "
                "count(*) FILTER (WHERE duplicate_of IS NOT NULL) AS duplicates, "
                "(SELECT count(*) FROM article_scores) AS scored FROM articles"
            )
        ).one()
    ctx.echo(
        f"  stored {stats.get('ioc/stored', 0)} articles this run; database has {row.n} "
        f"({row.relevant} relevant to the province, {row.duplicates} near-duplicates "
        f"linked, {row.scored} scored)"
    )
    if "ioc/stored" in stats and not row.scored:
        ctx.echo("  scoring skipped: nlp.scoring is not available (stage switched off)")
