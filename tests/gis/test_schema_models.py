"""The ORM models (gis/db/models.py) match the schema the migrations build: Alembic's
autogenerate comparison on the migrated test PostGIS finds nothing to change.

What legitimately differs, and is ignored (each one below, narrowly):

* PostGIS's own tables (``spatial_ref_sys``...): geoalchemy2's ``include_object``.
* Views (``api_*``), the ``pygeoapi`` schema (pygeoapi's job table), PostGIS's ``tiger`` and
  ``topology`` schemas, pgstac: Alembic compares tables of the default schema only, so they
  never enter the comparison.
* The generated columns ``geom_webmercator`` (migration 0005): their expression depends on the
  storage SRID chosen when the schema is created, so the ORM does not declare them (nothing
  writes them; PostgreSQL maintains them).
* The SRID of ``parcels.geom`` and ``land_changes.geom``: the storage CRS is configuration
  (``IOC_STORAGE_SRID``, fixed when the schema is created); the ORM declares them with
  SRID -1, so only their geometry type is compared.
* Check constraints: Alembic does not compare them; tests/gis/test_migrations.py exercises
  them.
"""

from __future__ import annotations

from pprint import pformat

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import Geometry, alembic_helpers

from gis.db.models import Base

pytestmark = pytest.mark.postgis

#: tables owned by the migrations but by no ORM model (named, so a forgotten model is caught)
MIGRATION_ONLY_TABLES = {"alembic_version", "apscheduler_jobs"}


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    if not alembic_helpers.include_object(obj, name, type_, reflected, compare_to):
        return False
    if type_ == "table" and reflected and compare_to is None and name in MIGRATION_ONLY_TABLES:
        return False
    # generated columns (geom_webmercator), see the module docstring
    return not (
        type_ == "column"
        and reflected
        and compare_to is None
        and getattr(obj, "computed", None) is not None
    )


def compare_type(context, inspected_column, metadata_column, inspected_type, metadata_type):
    if isinstance(metadata_type, Geometry) and metadata_type.srid == -1:
        # storage SRID chosen at schema creation: compare the geometry type only
        return (getattr(inspected_type, "geometry_type", None) or "").upper() != (
            metadata_type.geometry_type or ""
        ).upper()
    return None  # Alembic's own comparison


def schema_differences(connection) -> list:
    ctx = MigrationContext.configure(
        connection,
        opts={
            "include_object": include_object,
            "compare_type": compare_type,
            "compare_server_default": False,
        },
    )
    return compare_metadata(ctx, Base.metadata)


def test_orm_models_match_the_migrated_schema(engine):
    with engine.connect() as conn:
        diff = schema_differences(conn)
    assert not diff, "models.py and the migrations differ:\n" + pformat(diff, width=100)


def test_the_comparison_sees_a_column_the_models_lack(connection):
    # the test can fail: a column added by a migration but not to the models is reported
    from sqlalchemy import text

    connection.execute(text("ALTER TABLE detection_runs ADD COLUMN not_in_models integer"))
    diff = schema_differences(connection)
    assert any(
        d[0] == "remove_column" and d[3].name == "not_in_models"
        for d in diff
        if isinstance(d, tuple)
    ), diff
