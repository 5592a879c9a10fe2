"""Commands of the land core: ``ioc db ...`` and ``ioc admin ...``.

They take what they need from the click context object (``ioc.cli.AppContext``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from gis.database import bring_up, database_url, embedded_cluster
from gis.db import migrate


def _app() -> object:
    return click.get_current_context().obj


@click.group()
def db() -> None:
    """The PostGIS database: the embedded cluster or IOC_DATABASE_URL."""


@db.command("up")
@click.option(
    "--recover", is_flag=True, help="Restart a cluster that crashed (stale postmaster.pid)."
)
def db_up(recover: bool) -> None:
    """Start the embedded PostGIS (initialising it once) and apply migrations. Idempotent."""
    settings = _app().db_settings
    url = bring_up(settings, recover=recover)
    revision = migrate.current_revision(url)
    where = "external database" if settings.database_url else "embedded PostGIS"
    click.echo(f"{where} ready, schema at revision {revision}")


@db.command("down")
def db_down() -> None:
    """Stop the embedded PostGIS cleanly."""
    settings = _app().db_settings
    if settings.database_url:
        click.echo("IOC_DATABASE_URL is set: the external database is not ours to stop.")
        return
    stopped = embedded_cluster(settings).stop()
    click.echo("embedded PostGIS stopped" if stopped else "embedded PostGIS was not running")


@db.command("status")
def db_status() -> None:
    """Say what runs where (exit 1 if the database is not usable)."""
    settings = _app().db_settings
    if settings.database_url:
        from gis.db.session import check_connection, redact

        check_connection(settings.database_url)
        url = settings.database_url
        click.echo(
            f"external database: {redact(url)}\n  schema revision: {migrate.current_revision(url)}"
        )
        return
    status = embedded_cluster(settings).status()
    click.echo(status.describe())
    if status.running:
        click.echo(f"  schema revision: {migrate.current_revision(status.url)}")
    if status.problem or not status.running:
        raise SystemExit(1)


@db.command("url")
def db_url() -> None:
    """Print the libpq URI (postgresql://...) for psql and GDAL."""
    click.echo(database_url(_app().db_settings))


@db.command("migrate")
@click.argument("revision", default="head")
@click.option("--down", "direction", flag_value="down", help="Downgrade to REVISION instead.")
def db_migrate(revision: str, direction: str | None) -> None:
    """Upgrade (or with --down, downgrade) the schema to REVISION."""
    app = _app()
    url = app.database_url()
    if direction == "down":
        migrate.downgrade(url, revision)
    else:
        migrate.upgrade(url, revision, storage_srid=app.db_settings.storage_srid)
    click.echo(f"schema at revision {migrate.current_revision(url)}")


@click.group()
def admin() -> None:
    """Administrative units."""


@admin.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--level",
    type=click.Choice(["province", "district", "commune"]),
    help="Level of every unit (default: from type prefix or code length).",
)
@click.option("--crs", help="CRS of the file when it declares none (e.g. EPSG:5897).")
@click.option("--layer", help="Layer of a multi-layer file (GeoPackage).")
@click.option(
    "--valid-from",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Start of validity (default: the file's valid_from field, else unknown).",
)
@click.option(
    "--valid-to", type=click.DateTime(["%Y-%m-%d"]), help="End of validity (default: open)."
)
@click.option("--source", help="Provenance recorded with the units (default: the file name).")
@click.option(
    "--force",
    is_flag=True,
    help="Import units that lie outside their parent unit or that move the units "
    "already stored (by default the import fails, naming the likely CRS).",
)
def admin_import(file: Path, level, crs, layer, valid_from, valid_to, source, force) -> None:
    """Load administrative units from any vector file (GeoPackage, Shapefile, GeoJSON...; any CRS).

    One transaction: a bad file leaves the database as it was. Invalid geometries are
    repaired and reported; unrepairable ones abort the import with their codes. Units that a
    wrong declared CRS has moved (outside their stored parent unit, or stored units moved all
    alike) fail the import, naming the likely CRS.
    """
    from gis.admin_units import import_admin_units

    def as_date(value: dt.datetime | None) -> dt.date | None:
        return value.date() if value else None

    report = import_admin_units(
        _app().engine(),
        file,
        level=level,
        crs=crs,
        layer=layer,
        valid_from=as_date(valid_from),
        valid_to=as_date(valid_to),
        source=source,
        force=force,
    )
    click.echo(report.summary())


@admin.command("load-reference")
@click.argument(
    "folder", type=click.Path(path_type=Path, exists=True, file_okay=False), required=False
)
def admin_load_reference(folder: Path | None) -> None:
    """Load the shipped units before/after the 2025 reform and the crosswalk (default data/admin)."""
    from gis.admin_units import load_reference_units

    app = _app()
    for report in load_reference_units(app.engine(), folder or app.data_dir / "admin"):
        click.echo(report.summary())


# `ioc db backup | restore` live in their own module
from gis.cli_backup import backup as _db_backup  # noqa: E402
from gis.cli_backup import restore as _db_restore  # noqa: E402

db.add_command(_db_backup)
db.add_command(_db_restore)
