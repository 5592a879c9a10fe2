"""Resolve which database to use and bring it up: the external one named by
``IOC_DATABASE_URL`` or the embedded cluster in the state directory."""

from __future__ import annotations

from gis.db import migrate
from gis.db.embedded import EmbeddedCluster
from gis.db.session import check_connection, redact
from gis.errors import DatabaseError
from gis.settings import DatabaseSettings


def embedded_cluster(settings: DatabaseSettings) -> EmbeddedCluster:
    return EmbeddedCluster(
        settings.state_dir,
        db_name=settings.db_name,
        db_user=settings.db_user,
        port=settings.db_port,
        bindir=settings.pg_bindir,
    )


def database_url(settings: DatabaseSettings) -> str:
    """The libpq URI everything connects to; the embedded cluster must be running."""
    if settings.database_url:
        return settings.database_url
    cluster = embedded_cluster(settings)
    status = cluster.status()
    if status.problem:
        raise DatabaseError("The embedded cluster " + status.problem + ".")
    if not status.running:
        raise DatabaseError("The embedded PostGIS is not running; start it with `ioc db up`.")
    return cluster.url()


def bring_up(settings: DatabaseSettings, recover: bool = False) -> str:
    """Start (if embedded) and migrate; idempotent. Returns the database URL."""
    if settings.database_url:
        check_connection(settings.database_url)
        url = settings.database_url
    else:
        cluster = embedded_cluster(settings)
        cluster.initialise()
        cluster.start(recover=recover)
        cluster.ensure_database()
        url = cluster.url()
    try:
        migrate.upgrade(url, storage_srid=settings.storage_srid)
    except DatabaseError:
        raise
    except Exception as exc:  # alembic errors that are not DB errors (e.g. broken history)
        raise DatabaseError(f"Migrating {redact(url)} failed: {exc}") from exc
    return url
