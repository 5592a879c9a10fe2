"""Schema v1: administrative units and crosswalk, land-use codes, parcels, imagery, detection
runs, land changes, parcel alerts, news sources, articles, scores, places, label feedback,
crawl failures.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import csv
from pathlib import Path

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

REFERENCE = Path(__file__).resolve().parents[3] / "reference"


def _storage_srid() -> int:
    return int(op.get_context().config.attributes.get("storage_srid", 5897))


def _geom(kind: str, srid: int) -> geoalchemy2.Geometry:
    return geoalchemy2.Geometry(kind, srid=srid, spatial_index=False)


def _ts(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def _valid_geom_check(table: str, column: str = "geom") -> sa.CheckConstraint:
    return sa.CheckConstraint(
        f"{column} IS NULL OR ST_IsValid({column})", name=f"ck_{table}_{column}_valid"
    )


def upgrade() -> None:
    srid = _storage_srid()
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.create_table(
        "admin_units",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("unit_type", sa.String(32)),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_ascii", sa.Text, nullable=False),
        sa.Column("parent_code", sa.String(16)),
        sa.Column("province_code", sa.String(16)),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date),
        sa.Column("source", sa.Text),
        sa.Column("area_km2", sa.Float),
        sa.Column("geom", _geom("MULTIPOLYGON", 4326)),
        sa.UniqueConstraint("code", "valid_from", name="uq_admin_units_code_valid_from"),
        sa.CheckConstraint(
            "level IN ('country', 'province', 'district', 'commune')", name="ck_admin_units_level"
        ),
        sa.CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="ck_admin_units_validity"),
        _valid_geom_check("admin_units"),
    )
    op.create_index("ix_admin_units_code", "admin_units", ["code"])
    op.create_index("ix_admin_units_name_ascii", "admin_units", ["name_ascii"])
    op.create_index("ix_admin_units_parent_code", "admin_units", ["parent_code"])
    op.create_index("ix_admin_units_province_code", "admin_units", ["province_code"])
    op.create_index("ix_admin_units_geom", "admin_units", ["geom"], postgresql_using="gist")

    op.create_table(
        "admin_unit_crosswalk",
        sa.Column("old_code", sa.String(16), primary_key=True),
        sa.Column("new_code", sa.String(16), primary_key=True),
        sa.Column("relation", sa.String(16), nullable=False),
        sa.Column("effective", sa.Date, nullable=False),
        sa.Column("note", sa.Text),
        sa.CheckConstraint("relation IN ('full', 'partial')", name="ck_crosswalk_relation"),
    )

    lu = op.create_table(
        "land_use_codes",
        sa.Column("code", sa.String(8), primary_key=True),
        sa.Column("version", sa.String(8), primary_key=True),
        sa.Column("name_vi", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("group", sa.String(24), nullable=False),
        sa.Column("cover_class", sa.String(24)),
        sa.CheckConstraint("version IN ('2014', '2024')", name="ck_land_use_codes_version"),
        sa.CheckConstraint(
            '"group" IN (\'agricultural\', \'non_agricultural\', \'unused\')',
            name="ck_land_use_codes_group",
        ),
    )
    lu_map = op.create_table(
        "land_use_code_map",
        sa.Column("code_2014", sa.String(8), primary_key=True),
        sa.Column("code_2024", sa.String(8), primary_key=True),
        sa.Column("note", sa.Text),
    )
    with open(REFERENCE / "land_use_codes.csv", encoding="utf-8") as f:
        op.bulk_insert(lu, list(csv.DictReader(f)))
    with open(REFERENCE / "land_use_code_map.csv", encoding="utf-8") as f:
        op.bulk_insert(lu_map, [{**r, "note": r["note"] or None} for r in csv.DictReader(f)])
    # every mapped code is a known code of its version
    op.execute(
        "ALTER TABLE land_use_code_map ADD COLUMN version_2014 varchar(8) NOT NULL DEFAULT '2014', "
        "ADD COLUMN version_2024 varchar(8) NOT NULL DEFAULT '2024', "
        "ADD CONSTRAINT ck_map_versions CHECK (version_2014 = '2014' AND version_2024 = '2024'), "
        "ADD CONSTRAINT fk_map_2014 FOREIGN KEY (code_2014, version_2014) REFERENCES land_use_codes (code, version), "
        "ADD CONSTRAINT fk_map_2024 FOREIGN KEY (code_2024, version_2024) REFERENCES land_use_codes (code, version)"
    )

    op.create_table(
        "parcels",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("commune_code", sa.String(16), nullable=False),
        sa.Column("old_commune_code", sa.String(16)),
        sa.Column("sheet_number", sa.String(16), nullable=False),
        sa.Column("parcel_number", sa.String(16), nullable=False),
        sa.Column("area_m2", sa.Float, nullable=False),
        sa.Column("legal_area_m2", sa.Float),
        sa.Column("land_use_code", sa.String(8), nullable=False),
        sa.Column("land_use_code_raw", sa.String(8), nullable=False),
        sa.Column("land_use_code_version", sa.String(8), nullable=False),
        sa.Column("land_use_code_current_version", sa.String(8), nullable=False, server_default="2024"),
        sa.Column("land_uses", postgresql.JSONB),
        sa.Column("owner_class", sa.String(16)),
        sa.Column("owner_name", sa.Text),
        sa.Column("address", sa.Text),
        sa.Column("source_file", sa.Text),
        _ts("imported_at", server_default=sa.func.now(), nullable=False),
        sa.Column("geom", _geom("MULTIPOLYGON", srid), nullable=False),
        sa.UniqueConstraint("commune_code", "sheet_number", "parcel_number", name="uq_parcels_key"),
        sa.ForeignKeyConstraint(
            ["land_use_code_raw", "land_use_code_version"],
            ["land_use_codes.code", "land_use_codes.version"],
            name="fk_parcels_raw_code",
        ),
        sa.ForeignKeyConstraint(
            ["land_use_code", "land_use_code_current_version"],
            ["land_use_codes.code", "land_use_codes.version"],
            name="fk_parcels_code",
        ),
        sa.CheckConstraint("land_use_code_current_version = '2024'", name="ck_parcels_current_version"),
        sa.CheckConstraint("area_m2 >= 0", name="ck_parcels_area"),
        sa.CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="ck_parcels_geom_valid"),
    )
    op.create_index("ix_parcels_commune_code", "parcels", ["commune_code"])
    op.create_index("ix_parcels_old_commune_code", "parcels", ["old_commune_code"])
    op.create_index("ix_parcels_land_use_code", "parcels", ["land_use_code"])
    op.create_index("ix_parcels_geom", "parcels", ["geom"], postgresql_using="gist")

    op.create_table(
        "imagery_scenes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sensor", sa.String(32)),
        _ts("acquired_at"),
        sa.Column("crs", sa.Text),
        sa.Column("transform", postgresql.JSONB),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("bands", postgresql.JSONB),
        sa.Column("cloud_fraction", sa.Float),
        sa.Column("nodata_fraction", sa.Float),
        sa.Column("metadata", postgresql.JSONB),
        _ts("registered_at", server_default=sa.func.now(), nullable=False),
        sa.Column("footprint", _geom("POLYGON", 4326)),
        _valid_geom_check("imagery_scenes", "footprint"),
    )

    op.create_table(
        "detection_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(64)),
        sa.Column("parameters", postgresql.JSONB),
        sa.Column("before_scene_id", sa.Integer, sa.ForeignKey("imagery_scenes.id")),
        sa.Column("after_scene_id", sa.Integer, sa.ForeignKey("imagery_scenes.id")),
        _ts("started_at", server_default=sa.func.now(), nullable=False),
        _ts("finished_at"),
        sa.Column("timings", postgresql.JSONB),
        sa.Column("stats", postgresql.JSONB),
        sa.Column("error", sa.Text),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="ck_detection_runs_status"),
    )

    cover = "('built_up', 'vegetation', 'water', 'bare')"
    op.create_table(
        "land_changes",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("detection_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("area_m2", sa.Float, nullable=False),
        sa.Column("from_class", sa.String(24)),
        sa.Column("to_class", sa.String(24)),
        sa.Column("confidence", sa.Float),
        sa.Column("date_before", sa.Date),
        sa.Column("date_after", sa.Date),
        sa.Column("commune_code", sa.String(16)),
        _ts("created_at", server_default=sa.func.now(), nullable=False),
        sa.Column("geom", _geom("MULTIPOLYGON", srid), nullable=False),
        sa.CheckConstraint(f"from_class IS NULL OR from_class IN {cover}", name="ck_land_changes_from"),
        sa.CheckConstraint(f"to_class IS NULL OR to_class IN {cover}", name="ck_land_changes_to"),
        sa.CheckConstraint("confidence IS NULL OR confidence BETWEEN 0 AND 1", name="ck_land_changes_confidence"),
        sa.CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="ck_land_changes_geom_valid"),
    )
    op.create_index("ix_land_changes_run_id", "land_changes", ["run_id"])
    op.create_index("ix_land_changes_commune_code", "land_changes", ["commune_code"])
    op.create_index("ix_land_changes_geom", "land_changes", ["geom"], postgresql_using="gist")

    op.create_table(
        "parcel_alerts",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("detection_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("parcel_id", sa.BigInteger, sa.ForeignKey("parcels.id", ondelete="CASCADE"), nullable=False),
        sa.Column("change_id", sa.BigInteger, sa.ForeignKey("land_changes.id", ondelete="SET NULL")),
        sa.Column("commune_code", sa.String(16)),
        sa.Column("changed_area_m2", sa.Float, nullable=False),
        sa.Column("changed_fraction", sa.Float, nullable=False),
        sa.Column("legal_code", sa.String(8), nullable=False),
        sa.Column("observed_from", sa.String(24)),
        sa.Column("observed_to", sa.String(24)),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("review_status", sa.String(16), nullable=False, server_default="new"),
        sa.Column("reviewer", sa.Text),
        sa.Column("review_note", sa.Text),
        _ts("reviewed_at"),
        _ts("created_at", server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("run_id", "parcel_id", "rule", name="uq_parcel_alerts_run_parcel_rule"),
        sa.CheckConstraint("severity IN ('low', 'medium', 'high')", name="ck_parcel_alerts_severity"),
        sa.CheckConstraint(
            "review_status IN ('new', 'confirmed', 'dismissed')", name="ck_parcel_alerts_review_status"
        ),
        sa.CheckConstraint(
            "review_status = 'new' OR reviewer IS NOT NULL", name="ck_parcel_alerts_reviewer"
        ),
        sa.CheckConstraint("changed_fraction BETWEEN 0 AND 1", name="ck_parcel_alerts_fraction"),
    )
    op.create_index("ix_parcel_alerts_run_id", "parcel_alerts", ["run_id"])
    op.create_index("ix_parcel_alerts_parcel_id", "parcel_alerts", ["parcel_id"])
    op.create_index("ix_parcel_alerts_commune_code", "parcel_alerts", ["commune_code"])

    op.create_table(
        "news_sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("title", sa.Text),
        sa.Column("homepage", sa.Text),
        sa.Column("scope", sa.String(16)),
        sa.Column("language", sa.String(8), nullable=False, server_default="vi"),
        sa.Column("config", postgresql.JSONB),
    )

    op.create_table(
        "articles",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("news_sources.id")),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("canonical_url", sa.Text, nullable=False, unique=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("lead", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("author", sa.Text),
        _ts("published_at"),
        _ts("fetched_at", server_default=sa.func.now(), nullable=False),
        sa.Column("language", sa.String(8)),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("simhash", sa.BigInteger),
        sa.Column("duplicate_of", sa.BigInteger, sa.ForeignKey("articles.id", ondelete="SET NULL")),
        sa.Column("relevant", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("matched_terms", postgresql.JSONB),
        sa.Column("extra", postgresql.JSONB),
        sa.CheckConstraint("canonical_url ~ '^https?://'", name="ck_articles_canonical_url"),
        sa.CheckConstraint("duplicate_of IS NULL OR duplicate_of <> id", name="ck_articles_not_self_duplicate"),
    )
    op.create_index("ix_articles_source_id", "articles", ["source_id"])
    op.create_index("ix_articles_published_at", "articles", ["published_at"])
    op.create_index("ix_articles_content_hash", "articles", ["content_hash"])

    op.create_table(
        "article_scores",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("article_id", sa.BigInteger, sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("probabilities", postgresql.JSONB, nullable=False),
        sa.Column("topic", sa.String(48)),
        sa.Column("topic_scores", postgresql.JSONB),
        sa.Column("reasons", postgresql.JSONB),
        _ts("scored_at", server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("article_id", "model_version", name="uq_article_scores_article_model"),
        sa.CheckConstraint("label IN ('negative', 'neutral', 'positive')", name="ck_article_scores_label"),
    )
    op.create_index("ix_article_scores_article_id", "article_scores", ["article_id"])

    op.create_table(
        "article_places",
        sa.Column("article_id", sa.BigInteger, sa.ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("admin_unit_id", sa.Integer, sa.ForeignKey("admin_units.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("mention", sa.Text),
        sa.Column("confidence", sa.Float),
    )

    op.create_table(
        "label_feedback",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("article_id", sa.BigInteger, sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
        sa.Column("field", sa.String(16), nullable=False, server_default="sentiment"),
        sa.Column("old_label", sa.String(48)),
        sa.Column("new_label", sa.String(48), nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        _ts("created_at", server_default=sa.func.now(), nullable=False),
        sa.Column("used_in_model_version", sa.String(64)),
        sa.CheckConstraint("field IN ('sentiment', 'topic')", name="ck_label_feedback_field"),
        sa.CheckConstraint(
            "field <> 'sentiment' OR new_label IN ('negative', 'neutral', 'positive')",
            name="ck_label_feedback_sentiment_label",
        ),
        sa.CheckConstraint("length(trim(reviewer)) > 0", name="ck_label_feedback_reviewer"),
    )
    op.create_index("ix_label_feedback_article_id", "label_feedback", ["article_id"])

    op.create_table(
        "crawl_failures",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("url", sa.Text),
        sa.Column("source_name", sa.String(64)),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", postgresql.JSONB),
        _ts("created_at", server_default=sa.func.now(), nullable=False),
        sa.Column("resolved", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_crawl_failures_url", "crawl_failures", ["url"])


def downgrade() -> None:
    for table in (
        "crawl_failures",
        "label_feedback",
        "article_places",
        "article_scores",
        "articles",
        "news_sources",
        "parcel_alerts",
        "land_changes",
        "detection_runs",
        "imagery_scenes",
        "parcels",
        "land_use_code_map",
        "land_use_codes",
        "admin_unit_crosswalk",
        "admin_units",
    ):
        op.drop_table(table)
