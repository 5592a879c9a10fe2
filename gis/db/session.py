"""Engines, sessions and small helpers shared by every writer of the schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gis.errors import DatabaseError, DatabaseSettingError


def sqlalchemy_url(database_url: str) -> str:
    """A libpq URI (postgresql://...) as a SQLAlchemy URL using psycopg 3."""
    scheme = urlsplit(database_url).scheme
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg" + database_url[len(scheme) :]
    if scheme.startswith("postgresql+"):
        return database_url
    raise DatabaseSettingError(
        f"IOC_DATABASE_URL must be a postgresql:// URI, got scheme '{scheme or '(none)'}'."
    )


def redact(database_url: str) -> str:
    """The URL with its password hidden, for messages."""
    parts = urlsplit(database_url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return database_url


def make_engine(database_url: str, **kwargs) -> Engine:
    """An Engine for ``database_url`` (libpq URI), pre-pinging pooled connections."""
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(sqlalchemy_url(database_url), **kwargs)


def check_connection(database_url: str, timeout: int = 5) -> None:
    """Raise DatabaseError with one sentence when the database cannot be reached."""
    engine = make_engine(database_url, connect_args={"connect_timeout": timeout})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"Cannot connect to {redact(database_url)}: {reason}") from exc
    finally:
        engine.dispose()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A Session in one transaction: committed on success, rolled back on error."""
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def storage_srid(connection: Connection) -> int:
    """SRID parcels and land changes are stored in (chosen when the schema was created)."""
    return int(
        connection.execute(text("SELECT Find_SRID('public', 'parcels', 'geom')")).scalar_one()
    )
