"""Apply or revert the Alembic migrations programmatically."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gis.db.session import make_engine, redact
from gis.errors import DatabaseError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(storage_srid: int = 5897) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["storage_srid"] = storage_srid
    return cfg


def _run(database_url: str, action, storage_srid: int) -> None:
    engine = make_engine(database_url, connect_args={"connect_timeout": 10})
    try:
        with engine.begin() as conn:
            cfg = alembic_config(storage_srid)
            cfg.attributes["connection"] = conn
            action(cfg)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"Migrating {redact(database_url)} failed: {reason}") from exc
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head", storage_srid: int = 5897) -> None:
    """Bring the schema to ``revision`` (one transaction: all or nothing)."""
    _run(database_url, lambda cfg: command.upgrade(cfg, revision), storage_srid)


def downgrade(database_url: str, revision: str = "base") -> None:
    _run(database_url, lambda cfg: command.downgrade(cfg, revision), 5897)


def current_revision(database_url: str) -> str | None:
    engine = make_engine(database_url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('public.alembic_version')")).scalar()
            if exists is None:
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
