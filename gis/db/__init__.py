"""PostGIS store: ORM models (one schema for the whole project), the embedded cluster,
engine/session helpers and Alembic migrations."""

from gis.db.session import make_engine, session_scope, storage_srid

__all__ = ["make_engine", "session_scope", "storage_srid"]
