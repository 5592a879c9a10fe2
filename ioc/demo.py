"""``ioc demo``: every stage that exists, on the shipped sample data, then serve the API.

Stages are functions ``demo_stage(ctx: DemoContext) -> None`` owned by the packages; a stage
whose module is not present is reported as skipped, never faked.
"""

from __future__ import annotations

import importlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
from sqlalchemy import Engine


@dataclass
class DemoContext:
    engine: Engine
    database_url: str
    state_dir: Path
    data_dir: Path
    echo: Callable[[str], None]


def _admin_stage(ctx: DemoContext) -> None:
    from gis.admin_units import load_reference_units

    for report in load_reference_units(ctx.engine, ctx.data_dir / "admin"):
        ctx.echo("  " + report.summary())


# (title, module, function) in pipeline order
STAGES: tuple[tuple[str, str | None, str | Callable[[DemoContext], None]], ...] = (
    ("administrative units", None, _admin_stage),
    ("land monitoring: cadastre, detection, parcel alerts", "gis.demo", "demo_stage"),
    ("internet monitoring: crawl, extract, score, store", "crawler.demo", "demo_stage"),
    ("citizens' posts: import, score, place", "crawler.posts", "demo_stage"),
    ("publishing: OGC API configuration", "api.demo", "demo_stage"),
)


def run_stages(ctx: DemoContext) -> None:
    for title, module_name, func in STAGES:
        if module_name is not None:
            if importlib.util.find_spec(module_name) is None:
                ctx.echo(f"- {title}: skipped (not built yet)")
                continue
            func = getattr(importlib.import_module(module_name), func)
        ctx.echo(f"- {title}")
        started = time.perf_counter()
        func(ctx)
        ctx.echo(f"  done in {time.perf_counter() - started:.1f} s")


def _print_entry_points(engine: Engine, host: str, port: int) -> None:
    """Where to look once the API serves (the demo news is dated in the past)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        latest = conn.execute(
            text("SELECT (max(published_at) AT TIME ZONE 'Asia/Ho_Chi_Minh')::date FROM articles")
        ).scalar()
    base = f"http://{host}:{port}"
    click.echo(
        f"collections: {base}/collections   admin units: {base}/collections/admin-units/items"
    )
    if latest:
        click.echo(f"daily digest of the sample news: {base}/digest/{latest}?f=html")
    with engine.connect() as conn:
        alert = conn.execute(
            text("SELECT min(id) FROM parcel_alerts WHERE superseded_at IS NULL")
        ).scalar()
    if alert:
        click.echo(
            f"parcel alerts to review (officer token): {base}/review/alerts   "
            f"an alert's A4 report: {base}/collections/parcel-alerts/items/{alert}/report?f=pdf"
        )


DEMO_TOKEN_ROLES = ("officer", "media", "admin")


def demo_tokens(state_dir: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    """The demo's API tokens, one per role: ``(file, [(name, role, token)])``.

    Generated once per state directory (so per embedded cluster) with :mod:`secrets`, kept in
    ``<state>/api/demo-tokens`` (mode 0600, ``name:role:token`` lines, the format of
    ``IOC_API_TOKENS_FILE``) and reused by later runs; never a secret in the repository.
    """
    path = state_dir / "api" / "demo-tokens"
    entries: list[tuple[str, str, str]] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.strip().split(":", 2)
            if len(parts) == 3 and not line.startswith("#"):
                entries.append((parts[0], parts[1], parts[2]))
        if sorted(role for _, role, _ in entries) == sorted(DEMO_TOKEN_ROLES):
            return path, entries
    entries = [(f"demo-{role}", role, secrets.token_urlsafe(24)) for role in DEMO_TOKEN_ROLES]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# ioc demo: one API token per role (generated for this state directory)\n")
        fh.writelines(f"{name}:{role}:{token}\n" for name, role, token in entries)
    os.replace(tmp, path)
    return path, entries


def _use_demo_tokens(state_dir: Path, host: str, port: int) -> None:
    """Print one token per role; without operator tokens, serve with them."""
    from api.settings import ApiSettings

    settings = ApiSettings()
    if settings.tokens or settings.tokens_file:
        click.echo(
            "API tokens: the operator's (IOC_API_TOKENS / IOC_API_TOKENS_FILE); no demo tokens."
        )
        return
    path, entries = demo_tokens(state_dir)
    os.environ["IOC_API_TOKENS_FILE"] = str(path)
    click.echo(
        f"API tokens of this demo, one per role (stored in {path}; a later `ioc serve` "
        f"uses them with IOC_API_TOKENS_FILE={path}):"
    )
    for name, role, token in entries:
        click.echo(f"  {role:8s} {token}   ({name})")
    media = next(t for _, r, t in entries if r == "media")
    click.echo(
        "  officer: review parcel alerts, run land-change-detection; media: correct sentiment, "
        "run sentiment-scoring and daily-digest; admin: everything. For example:\n"
        f"  curl -X POST -H 'Authorization: Bearer {media}' -H 'Content-Type: application/json' "
        f'-d \'{{"inputs": {{"date": "2025-07-02"}}}}\' '
        f"http://{host}:{port}/processes/daily-digest/execution"
    )


@click.command()
@click.option("--no-serve", is_flag=True, help="Stop after loading the sample data.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.pass_obj
def demo(app, no_serve: bool, host: str, port: int) -> None:
    """Start the database, run the whole pipeline on the shipped sample data, serve the API."""
    from gis.database import bring_up
    from gis.db.session import make_engine

    started = time.perf_counter()
    click.echo("- database: starting PostGIS and applying migrations")
    url = bring_up(app.db_settings)
    engine = make_engine(url)
    ctx = DemoContext(
        engine=engine,
        database_url=url,
        state_dir=app.state_dir,
        data_dir=app.data_dir,
        echo=click.echo,
    )
    run_stages(ctx)
    click.echo(f"demo data loaded in {time.perf_counter() - started:.1f} s")
    _print_entry_points(engine, host, port)
    if importlib.util.find_spec("api.settings") is not None:
        _use_demo_tokens(app.state_dir, host, port)
    if no_serve:
        return
    if importlib.util.find_spec("api.cli") is None:
        click.echo("the API is not built yet: nothing to serve")
        return
    from api.cli import serve

    click.get_current_context().invoke(serve, host=host, port=port)
