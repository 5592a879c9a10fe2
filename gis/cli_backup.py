"""``ioc db backup [--out FILE]`` and ``ioc db restore FILE`` (registered on ``ioc db``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click


def _app():
    return click.get_current_context().find_root().obj


@click.command("backup")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Archive to write (default <IOC_BACKUP_DIR or state/backups>/ioc-<UTC time>.iocbak).",
)
@click.option(
    "--prune/--no-prune",
    default=False,
    help="Then apply the retention (IOC_BACKUP_KEEP_DAILY/_WEEKLY) to the backup folder.",
)
def backup(out: Path | None, prune: bool) -> None:
    """Back up the database (pg_dump) and the model registries into one archive."""
    from gis.db.backup import BackupSettings, create_backup, prune_backups

    app = _app()
    settings = BackupSettings()
    state_dir = Path(app.state_dir)
    if out is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = settings.folder(state_dir) / f"ioc-{stamp}.iocbak"
    info = create_backup(
        app.database_url(), out, state_dir=state_dir, extra_dirs=settings.include_dirs(state_dir)
    )
    rows = sum(info.tables.values())
    click.echo(
        f"wrote {info.path} ({info.size / 1e6:.1f} MB: {len(info.tables)} tables, {rows} rows"
        + (f", folders {', '.join(info.manifest['folders'])}" if info.manifest["folders"] else "")
        + ")"
    )
    if prune:
        removed = prune_backups(out.parent, settings.keep_daily, settings.keep_weekly)
        click.echo(f"retention: removed {len(removed)} old backup(s)")


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--database-url",
    default=None,
    help="Target database (created when missing); default the configured one.",
)
@click.option("--force", is_flag=True, help="Replace the contents of a database that is not empty.")
def restore(archive: Path, database_url: str | None, force: bool) -> None:
    """Restore an archive of `ioc db backup` into an empty database, then verify it."""
    from gis.db.backup import restore_backup

    app = _app()
    url = database_url or app.database_url()
    result = restore_backup(archive, url, state_dir=Path(app.state_dir), force=force)
    click.echo(
        f"restored {archive} ({result['created']}) into {result['database']}: "
        f"{result['tables']} tables, {result['rows']} rows, counts and parcels checksum "
        "match the backup"
    )
    click.echo(json.dumps(result, ensure_ascii=False), err=True)
