"""Schema v1: migrations up and down, and the constraints that keep bad data out."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, InternalError

from gis.db import migrate
from gis.db.session import make_engine

pytestmark = pytest.mark.postgis

TABLES = {
    "admin_units",
    "admin_unit_crosswalk",
    "land_use_codes",
    "land_use_code_map",
    "parcels",
    "imagery_scenes",
    "detection_runs",
    "land_changes",
    "parcel_alerts",
    "news_sources",
    "articles",
    "article_scores",
    "article_places",
    "label_feedback",
    "crawl_failures",
}


@pytest.fixture
def scratch_url(embedded_cluster, database_url):
    """A fresh empty database next to the test database (embedded cluster only)."""
    if embedded_cluster is None:
        pytest.skip("needs the embedded cluster to create a scratch database")
    name = "scratch_" + uuid.uuid4().hex[:8]
    admin = make_engine(embedded_cluster.url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield embedded_cluster.url(name)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version", "spatial_ref_sys"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    assert tables(scratch_url) >= TABLES
    head = migrate.current_revision(scratch_url)
    migrate.downgrade(scratch_url, "base")
    assert not (TABLES & tables(scratch_url))
    assert migrate.current_revision(scratch_url) is None
    migrate.upgrade(scratch_url)
    assert migrate.current_revision(scratch_url) == head


def test_storage_srid_is_configurable(scratch_url: str) -> None:
    migrate.upgrade(scratch_url, storage_srid=3405)
    engine = make_engine(scratch_url)
    with engine.connect() as conn:
        from gis.db.session import storage_srid

        assert storage_srid(conn) == 3405
    engine.dispose()


def test_land_use_codes_and_mapping_loaded(connection) -> None:
    rows = dict(
        connection.execute(sa.text("SELECT code_2014, code_2024 FROM land_use_code_map")).all()
    )
    assert rows["BHK"] == "HNK" and rows["NHK"] == "HNK" and rows["LUC"] == "LUC"
    groups = dict(
        connection.execute(
            sa.text("SELECT code, \"group\" FROM land_use_codes WHERE version = '2024'")
        ).all()
    )
    assert (
        groups["LUC"] == "agricultural"
        and groups["ONT"] == "non_agricultural"
        and groups["BCS"] == "unused"
    )


def _parcel(connection, **overrides) -> None:
    values = dict(
        commune="13285",
        sheet="1",
        number="1",
        code="LUC",
        raw="LUC",
        version="2024",
        wkt="MULTIPOLYGON(((587000 2268000,587020 2268000,587020 2268020,587000 2268020,587000 2268000)))",
    )
    values.update(overrides)
    connection.execute(
        sa.text(
            "INSERT INTO parcels (commune_code, sheet_number, parcel_number, area_m2, land_use_code, "
            "land_use_code_raw, land_use_code_version, geom) VALUES (:commune, :sheet, :number, 400, :code, "
            ":raw, :version, ST_GeomFromText(:wkt, Find_SRID('public', 'parcels', 'geom')))"
        ),
        values,
    )


def test_parcel_constraints(connection) -> None:
    _parcel(connection)
    with connection.begin_nested() as sp:
        with pytest.raises(IntegrityError, match="uq_parcels_key"):
            _parcel(connection)
        sp.rollback()
    with connection.begin_nested() as sp:
        with pytest.raises(IntegrityError, match="fk_parcels"):
            _parcel(connection, number="2", code="XYZ", raw="XYZ")
        sp.rollback()
    with connection.begin_nested() as sp:
        with pytest.raises(IntegrityError, match="fk_parcels_raw_code"):
            _parcel(connection, number="3", raw="BHK", version="2024")  # BHK is a 2014 code
        sp.rollback()
    _parcel(connection, number="4", code="HNK", raw="BHK", version="2014")
    with connection.begin_nested() as sp:
        bowtie = "MULTIPOLYGON(((587000 2268000,587020 2268020,587020 2268000,587000 2268020,587000 2268000)))"
        with pytest.raises((IntegrityError, InternalError), match="ck_parcels_geom_valid"):
            _parcel(connection, number="5", wkt=bowtie)
        sp.rollback()


def test_article_and_alert_constraints(connection) -> None:
    with connection.begin_nested() as sp:
        with pytest.raises(IntegrityError, match="ck_articles_canonical_url"):
            connection.execute(
                sa.text(
                    "INSERT INTO articles (url, canonical_url, title, text, content_hash) "
                    "VALUES ('x', 'javascript:alert(1)', 't', 'b', 'h')"
                )
            )
        sp.rollback()
    article_id = connection.execute(
        sa.text(
            "INSERT INTO articles (url, canonical_url, title, text, content_hash) "
            "VALUES ('https://a.vn/1', 'https://a.vn/1', 't', 'b', 'h') RETURNING id"
        )
    ).scalar_one()
    with connection.begin_nested() as sp:
        with pytest.raises(IntegrityError, match="ck_label_feedback_sentiment_label"):
            connection.execute(
                sa.text(
                    "INSERT INTO label_feedback (article_id, new_label, reviewer) VALUES (:a, 'angry', 'lan')"
                ),
                {"a": article_id},
            )
        sp.rollback()
    with connection.begin_nested() as sp:
        with pytest.raises(IntegrityError, match="ck_article_scores_label"):
            connection.execute(
                sa.text(
                    "INSERT INTO article_scores (article_id, model_version, label, probabilities) "
                    "VALUES (:a, 'v1', 'angry', '{}')"
                ),
                {"a": article_id},
            )
        sp.rollback()


def test_0007_merges_alerts_to_one_per_parcel_and_run_keeping_reviews(scratch_url: str) -> None:
    # before 0007 one change on one parcel gave one alert per rule; the upgrade keeps one
    # alert per (run, parcel) with every rule, and a review made on a dropped duplicate
    migrate.upgrade(scratch_url, "0006")
    engine = make_engine(scratch_url)
    try:
        with engine.begin() as conn:
            _parcel(conn)
            _parcel(conn, number="2")
            pids = (
                conn.execute(sa.text("SELECT id FROM parcels ORDER BY parcel_number"))
                .scalars()
                .all()
            )
            run = conn.execute(
                sa.text(
                    "INSERT INTO detection_runs (status, method) VALUES ('succeeded', 'cva') RETURNING id"
                )
            ).scalar_one()
            insert = sa.text(
                "INSERT INTO parcel_alerts (run_id, parcel_id, changed_area_m2, changed_fraction, "
                "legal_code, rule, severity, review_status, reviewer) VALUES (:r, :p, :a, 0.5, 'LUC', "
                ":rule, :sev, :st, :who)"
            )
            for p, rule, sev, area, st, who in (
                (pids[0], "agricultural_to_built_up", "medium", 300, "new", None),
                (pids[0], "rice_land_lost", "high", 200, "new", None),
                (pids[1], "rice_land_lost", "high", 200, "new", None),
                (pids[1], "agricultural_to_built_up", "medium", 300, "confirmed", "officer"),
            ):
                conn.execute(
                    insert,
                    {"r": run, "p": p, "rule": rule, "sev": sev, "a": area, "st": st, "who": who},
                )
        migrate.upgrade(scratch_url, "0007")
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT parcel_id, rule, rules, severity, review_status, reviewer "
                    "FROM parcel_alerts ORDER BY parcel_id"
                )
            ).all()
            view = conn.execute(
                sa.text("SELECT rule, rules FROM api_parcel_alerts ORDER BY parcel_id")
            ).all()
        assert [tuple(r) for r in rows] == [
            (
                pids[0],
                "rice_land_lost",
                ["rice_land_lost", "agricultural_to_built_up"],
                "high",
                "new",
                None,
            ),
            (
                pids[1],
                "rice_land_lost",
                ["rice_land_lost", "agricultural_to_built_up"],
                "high",
                "confirmed",
                "officer",
            ),
        ]
        assert view[0] == ("rice_land_lost", "rice_land_lost,agricultural_to_built_up")
        # and back: one row per rule again
        migrate.downgrade(scratch_url, "0006")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM parcel_alerts")).scalar_one() == 4
    finally:
        engine.dispose()
