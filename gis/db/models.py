"""The project's one schema (schema v1). Every table of the mission lives here, articles too,
so there is one migration history. DDL is owned by the Alembic migrations; these models are
for reading and writing.

Geometry columns of parcels and land changes are stored in a projected storage CRS chosen when
the schema is created (``IOC_STORAGE_SRID``, default EPSG:5897); the ORM declares them without
an SRID and writers transform into ``storage_srid(connection)``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ADMIN_LEVELS = ("country", "province", "district", "commune")
COVER_CLASSES = ("built_up", "vegetation", "water", "bare")
ALERT_SEVERITIES = ("low", "medium", "high")
REVIEW_STATUSES = ("new", "confirmed", "dismissed")
RUN_STATUSES = ("running", "succeeded", "failed")
SENTIMENT_LABELS = ("negative", "neutral", "positive")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB}


class AdminUnit(Base):
    """An administrative unit (province, district, commune/ward) valid over a period."""

    __tablename__ = "admin_units"
    __table_args__ = (
        UniqueConstraint("code", "valid_from", name="uq_admin_units_code_valid_from"),
        Index("ix_admin_units_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), index=True)
    level: Mapped[str] = mapped_column(String(16))
    unit_type: Mapped[str | None] = mapped_column(String(32))  # xã, phường, thị trấn, huyện...
    name: Mapped[str] = mapped_column(Text)
    name_ascii: Mapped[str] = mapped_column(Text, index=True)
    parent_code: Mapped[str | None] = mapped_column(String(16), index=True)
    province_code: Mapped[str | None] = mapped_column(String(16), index=True)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(Text)
    area_km2: Mapped[float | None] = mapped_column(Float)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True)


class AdminUnitCrosswalk(Base):
    """Old unit → new unit after a reform (e.g. 1 July 2025), full or partial."""

    __tablename__ = "admin_unit_crosswalk"

    old_code: Mapped[str] = mapped_column(String(16), primary_key=True)
    new_code: Mapped[str] = mapped_column(String(16), primary_key=True)
    relation: Mapped[str] = mapped_column(String(16))  # full | partial
    effective: Mapped[dt.date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)


class LandUseCode(Base):
    """A legal land-use code of one code version (2014 or 2024)."""

    __tablename__ = "land_use_codes"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    version: Mapped[str] = mapped_column(String(8), primary_key=True)
    name_vi: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    group: Mapped[str] = mapped_column("group", String(24))
    cover_class: Mapped[str | None] = mapped_column(String(24))


class LandUseCodeMapping(Base):
    """2014 code → 2024 code."""

    __tablename__ = "land_use_code_map"

    __table_args__ = (
        # every mapped code is a known code of its version (0001)
        ForeignKeyConstraint(
            ["code_2014", "version_2014"],
            ["land_use_codes.code", "land_use_codes.version"],
            name="fk_map_2014",
        ),
        ForeignKeyConstraint(
            ["code_2024", "version_2024"],
            ["land_use_codes.code", "land_use_codes.version"],
            name="fk_map_2024",
        ),
    )

    code_2014: Mapped[str] = mapped_column(String(8), primary_key=True)
    code_2024: Mapped[str] = mapped_column(String(8), primary_key=True)
    note: Mapped[str | None] = mapped_column(Text)
    version_2014: Mapped[str] = mapped_column(String(8), server_default="2014")
    version_2024: Mapped[str] = mapped_column(String(8), server_default="2024")


class Parcel(Base):
    """A cadastral parcel (thửa đất), keyed by commune + map sheet + parcel number."""

    __tablename__ = "parcels"
    __table_args__ = (
        # 0002_land: old communes each numbered sheets from 1, so the old code is in the key
        UniqueConstraint(
            "commune_code",
            "old_commune_code",
            "sheet_number",
            "parcel_number",
            name="uq_parcels_key",
            postgresql_nulls_not_distinct=True,
        ),
        ForeignKeyConstraint(
            ["land_use_code_raw", "land_use_code_version"],
            ["land_use_codes.code", "land_use_codes.version"],
            name="fk_parcels_raw_code",
        ),
        ForeignKeyConstraint(
            ["land_use_code", "land_use_code_current_version"],
            ["land_use_codes.code", "land_use_codes.version"],
            name="fk_parcels_code",
        ),
        Index("ix_parcels_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    commune_code: Mapped[str] = mapped_column(String(16), index=True)
    old_commune_code: Mapped[str | None] = mapped_column(String(16), index=True)
    sheet_number: Mapped[str] = mapped_column(String(16))
    parcel_number: Mapped[str] = mapped_column(String(16))
    area_m2: Mapped[float] = mapped_column(Float)
    legal_area_m2: Mapped[float | None] = mapped_column(Float)
    land_use_code: Mapped[str] = mapped_column(String(8), index=True)  # 2024 code
    land_use_code_raw: Mapped[str] = mapped_column(String(8))
    land_use_code_version: Mapped[str] = mapped_column(String(8))
    land_use_code_current_version: Mapped[str] = mapped_column(String(8), server_default="2024")
    land_uses: Mapped[list[Any] | None] = mapped_column(JSONB)  # [{code, area_m2, term, origin}]
    owner_class: Mapped[str | None] = mapped_column(String(16))
    owner_name: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    source_file: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=-1, spatial_index=False), nullable=False)


class ImageryScene(Base):
    """One image (date) read by a detection run: footprint, grid and metadata."""

    __tablename__ = "imagery_scenes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    sensor: Mapped[str | None] = mapped_column(String(32))
    acquired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    crs: Mapped[str | None] = mapped_column(Text)
    transform: Mapped[list[Any] | None] = mapped_column(JSONB)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    bands: Mapped[list[Any] | None] = mapped_column(JSONB)
    cloud_fraction: Mapped[float | None] = mapped_column(Float)
    nodata_fraction: Mapped[float | None] = mapped_column(Float)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    registered_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    footprint = mapped_column(Geometry("POLYGON", srid=4326, spatial_index=False), nullable=True)


class DetectionRun(Base):
    """One change-detection run: inputs, parameters, model version, status and timings."""

    __tablename__ = "detection_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    before_scene_id: Mapped[int | None] = mapped_column(ForeignKey("imagery_scenes.id"))
    after_scene_id: Mapped[int | None] = mapped_column(ForeignKey("imagery_scenes.id"))
    started_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    # 0007: the run's identity (scene fingerprints + method/model/parameters), for re-runs
    input_key: Mapped[str | None] = mapped_column(String(64), index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class LandChange(Base):
    """A detected land-cover change polygon with its from→to classes."""

    __tablename__ = "land_changes"
    __table_args__ = (Index("ix_land_changes_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("detection_runs.id", ondelete="CASCADE"), index=True
    )
    area_m2: Mapped[float] = mapped_column(Float)
    from_class: Mapped[str | None] = mapped_column(String(24))
    to_class: Mapped[str | None] = mapped_column(String(24))
    confidence: Mapped[float | None] = mapped_column(Float)
    kind: Mapped[str | None] = mapped_column(String(16))  # 0002_land: conversion|seasonal|other
    date_before: Mapped[dt.date | None] = mapped_column(Date)
    date_after: Mapped[dt.date | None] = mapped_column(Date)
    commune_code: Mapped[str | None] = mapped_column(String(16), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=-1, spatial_index=False), nullable=False)


class ParcelAlert(Base):
    """A likely violation on one parcel found by one run, with its review status."""

    __tablename__ = "parcel_alerts"
    # 0007: one alert per parcel and run, listing every rule that fired
    __table_args__ = (UniqueConstraint("run_id", "parcel_id", name="uq_parcel_alerts_run_parcel"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("detection_runs.id", ondelete="CASCADE"), index=True
    )
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id", ondelete="CASCADE"), index=True)
    change_id: Mapped[int | None] = mapped_column(
        ForeignKey("land_changes.id", ondelete="SET NULL")
    )
    commune_code: Mapped[str | None] = mapped_column(String(16), index=True)
    changed_area_m2: Mapped[float] = mapped_column(Float)
    changed_fraction: Mapped[float] = mapped_column(Float)
    legal_code: Mapped[str] = mapped_column(String(8))
    observed_from: Mapped[str | None] = mapped_column(String(24))
    observed_to: Mapped[str | None] = mapped_column(String(24))
    rule: Mapped[str] = mapped_column(String(64))  # the rule that set the severity: rules[0]
    severity: Mapped[str] = mapped_column(String(8))
    rules: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")  # 0007
    superseded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # 0007
    review_status: Mapped[str] = mapped_column(String(16), server_default="new")
    reviewer: Mapped[str | None] = mapped_column(Text)
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class NewsSource(Base):
    """An online outlet as configured in the sites file."""

    __tablename__ = "news_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    homepage: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str | None] = mapped_column(String(16))  # national | provincial
    language: Mapped[str] = mapped_column(String(8), server_default="vi")
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Article(Base):
    """A news article: canonical URL unique; near-duplicates point at the first copy."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("news_sources.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    canonical_url: Mapped[str] = mapped_column(Text, unique=True)
    title: Mapped[str] = mapped_column(Text)
    lead: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    fetched_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    language: Mapped[str | None] = mapped_column(String(8))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    simhash: Mapped[int | None] = mapped_column(BigInteger)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    relevant: Mapped[bool] = mapped_column(Boolean, server_default="false")
    matched_terms: Mapped[list[Any] | None] = mapped_column(JSONB)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class ArticleScore(Base):
    """Sentiment and topic of an article by one model version, with the reasons."""

    __tablename__ = "article_scores"
    __table_args__ = (
        UniqueConstraint("article_id", "model_version", name="uq_article_scores_article_model"),
        # 0004: the latest score of an article
        Index(
            "ix_article_scores_article_scored",
            "article_id",
            text("scored_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    model_version: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(16))
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSONB)
    topic: Mapped[str | None] = mapped_column(String(48))
    topic_scores: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    reasons: Mapped[list[Any] | None] = mapped_column(JSONB)
    scored_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ArticlePlace(Base):
    """Article ↔ administrative unit it mentions."""

    __tablename__ = "article_places"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    admin_unit_id: Mapped[int] = mapped_column(
        ForeignKey("admin_units.id", ondelete="CASCADE"), primary_key=True
    )
    mention: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)


class LabelFeedback(Base):
    """A correction of an article's or a citizen's post's label by media staff (exactly one of
    ``article_id``, ``post_id``: 0012); used by ``ioc nlp retrain`` (per genre)."""

    __tablename__ = "label_feedback"
    # 0004: the latest correction of an article; 0012: of a post
    __table_args__ = (
        Index(
            "ix_label_feedback_article_created",
            "article_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index(
            "ix_label_feedback_post_created",
            "post_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    post_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("posts.id", ondelete="CASCADE")
    )
    field: Mapped[str] = mapped_column(String(16), server_default="sentiment")
    old_label: Mapped[str | None] = mapped_column(String(48))
    new_label: Mapped[str] = mapped_column(String(48))
    reviewer: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    used_in_model_version: Mapped[str | None] = mapped_column(String(64))


class CrawlFailure(Base):
    """Dead-letter record: an item that failed a crawler stage, with the reason."""

    __tablename__ = "crawl_failures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    url: Mapped[str | None] = mapped_column(Text, index=True)
    source_name: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    resolved: Mapped[bool] = mapped_column(Boolean, server_default="false")


# --- roles and audit (migration 0006) ---
# (imports of this section kept here so each section can be edited on its own)
from sqlalchemy import CheckConstraint, Index  # noqa: E402

#: roles an API token can carry (api/auth.py): officer reviews parcel alerts and runs land
#: processes, media corrects sentiment labels and runs NLP processes, admin may do everything
ROLES = ("admin", "officer", "media")
AUDIT_CHANNELS = ("api", "cli")


class AuditEntry(Base):
    """Who changed what, when: one row per review or label correction (append-only)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'officer', 'media')", name="ck_audit_log_role"),
        CheckConstraint("channel IN ('api', 'cli')", name="ck_audit_log_channel"),
        CheckConstraint("length(btrim(actor)) > 0", name="ck_audit_log_actor"),
        Index("ix_audit_log_target", "target_table", "target_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    actor: Mapped[str] = mapped_column(Text)  # token name, or the system user at the CLI
    role: Mapped[str | None] = mapped_column(String(16))  # None: command line (no token)
    channel: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(32))  # review_alert | correct_label
    target_table: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[int] = mapped_column(BigInteger)
    old_value: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    new_value: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)


# --- detection runs (migration 0007) ---
# Columns of 0007 live in their classes above (marked "0007"): DetectionRun.input_key and
# updated_at; ParcelAlert.rules and superseded_at, and its unique key (run_id, parcel_id).


# --- posts (migration 0008) ---
from sqlalchemy import CheckConstraint  # noqa: E402


class Post(Base):
    """A citizen's post or comment (social media, forum) imported by ``ioc posts import``.

    ``post_key`` (SHA-256 of the canonical URL, else source + platform id, else source +
    author + time + text) makes re-imports idempotent; exact copies of longer texts point at
    the first one through ``duplicate_of``. ``author`` is stored, never published.
    """

    __tablename__ = "posts"
    __table_args__ = (
        CheckConstraint("length(btrim(text)) > 0", name="ck_posts_text"),
        CheckConstraint("url IS NULL OR url ~ '^https?://'", name="ck_posts_url"),
        CheckConstraint(
            "duplicate_of IS NULL OR duplicate_of <> id", name="ck_posts_not_self_duplicate"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    post_key: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    canonical_url: Mapped[str | None] = mapped_column(Text, index=True)
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    imported_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class PostScore(Base):
    """Sentiment and topic of a post by one model version (scored as genre 'post')."""

    __tablename__ = "post_scores"
    __table_args__ = (
        UniqueConstraint("post_id", "model_version", name="uq_post_scores_post_model"),
        CheckConstraint(
            "label IN ('negative', 'neutral', 'positive')", name="ck_post_scores_label"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    genre: Mapped[str] = mapped_column(String(16), server_default="post")
    label: Mapped[str] = mapped_column(String(16))
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSONB)
    confidence: Mapped[float | None] = mapped_column(Float)
    topic: Mapped[str | None] = mapped_column(String(48))
    topic_scores: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    reasons: Mapped[list[Any] | None] = mapped_column(JSONB)
    scored_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class PostPlace(Base):
    """Post ↔ administrative unit it mentions."""

    __tablename__ = "post_places"

    post_id: Mapped[int] = mapped_column(
        ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True
    )
    admin_unit_id: Mapped[int] = mapped_column(
        ForeignKey("admin_units.id", ondelete="CASCADE"), primary_key=True
    )
    mention: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)


# --- job runs, stored digests (migration 0009) ---
# (imports of this section kept here so each section can be edited on its own)
from sqlalchemy import CheckConstraint, Index, LargeBinary, Unicode  # noqa: E402

JOB_RUN_STATUSES = ("running", "succeeded", "failed")


class JobRun(Base):
    """One run of a scheduled job of ``ioc run``: when, by which process, how it ended."""

    __tablename__ = "job_runs"
    __table_args__ = (
        Index("ix_job_runs_job_started_at", "job", "started_at"),
        CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="ck_job_runs_status"),
        CheckConstraint("trigger IN ('schedule', 'manual')", name="ck_job_runs_trigger"),
        CheckConstraint(
            "status = 'running' OR finished_at IS NOT NULL", name="ck_job_runs_finished"
        ),
        CheckConstraint(
            "status <> 'failed' OR error IS NOT NULL", name="ck_job_runs_failed_reason"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(16), server_default="schedule")


class StoredDigest(Base):
    """The daily digest as built on its day: served as stored, never rebuilt."""

    __tablename__ = "stored_digests"
    __table_args__ = (
        CheckConstraint("pdf IS NOT NULL OR pdf_error IS NOT NULL", name="ck_stored_digests_pdf"),
    )

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    html: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    pdf_error: Mapped[str | None] = mapped_column(Text)
    built_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id", ondelete="SET NULL"))
    delivery: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class SchedulerJob(Base):
    """APScheduler 3's SQLAlchemyJobStore table (its layout; it reads and writes it)."""

    __tablename__ = "apscheduler_jobs"

    id: Mapped[str] = mapped_column(Unicode(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)


# --- imagery intake (migration 0010) ---
# (imports of this section kept here so each section can be edited on its own)
from sqlalchemy import CheckConstraint  # noqa: E402

INTAKE_STATUSES = ("processed", "rejected", "failed")


class ImageryIntake(Base):
    """A scene the imagery intake handled: a STAC item or a watch-folder delivery.

    ``processed``: written locally (``local_path``), usable for detection; ``rejected``: never
    retried (clouded over the area, asset missing or corrupt, not a scene); ``failed``: a
    transient error, retried after ``next_attempt_at``. ``reason`` says why.
    """

    __tablename__ = "imagery_intake"
    __table_args__ = (
        UniqueConstraint("source", "collection", "item_id", name="uq_imagery_intake_item"),
        CheckConstraint("source IN ('stac', 'watch')", name="ck_imagery_intake_source"),
        CheckConstraint(
            "status IN ('processed', 'rejected', 'failed')", name="ck_imagery_intake_status"
        ),
        CheckConstraint(
            "status = 'processed' OR reason IS NOT NULL", name="ck_imagery_intake_reason"
        ),
        CheckConstraint(
            "status <> 'processed' OR local_path IS NOT NULL", name="ck_imagery_intake_path"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    collection: Mapped[str] = mapped_column(Text, server_default="")
    item_id: Mapped[str] = mapped_column(Text)
    acquired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    cloud_cover: Mapped[float | None] = mapped_column(Float)
    usable_share: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    local_path: Mapped[str | None] = mapped_column(Text)
    href: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="1")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    local_bytes: Mapped[int | None] = mapped_column(BigInteger)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    footprint = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ImageryIntakePair(Base):
    """A (before, after) pair of intake scenes sent to change detection, and what came of it."""

    __tablename__ = "imagery_intake_pairs"
    __table_args__ = (
        UniqueConstraint("before_id", "after_id", name="uq_imagery_intake_pairs"),
        CheckConstraint("status IN ('succeeded', 'failed')", name="ck_imagery_intake_pairs_status"),
        CheckConstraint(
            "status <> 'failed' OR error IS NOT NULL", name="ck_imagery_intake_pairs_error"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    before_id: Mapped[int] = mapped_column(ForeignKey("imagery_intake.id", ondelete="CASCADE"))
    after_id: Mapped[int] = mapped_column(
        ForeignKey("imagery_intake.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    detection_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("detection_runs.id", ondelete="SET NULL")
    )
    changes: Mapped[int | None] = mapped_column(Integer)
    alerts: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


# --- land evidence: scene COGs, alert evidence (migration 0011) ---

EVIDENCE_MOMENTS = ("before", "after")
EVIDENCE_STYLES = ("truecolor", "falsecolor")


class SceneCog(Base):
    """The cloud-optimised GeoTIFF kept for a scene of a stored run (B02, B03, B04, B08), with
    the per-band 2/98 % stretch that map tiles and chips use (``gis.evidence``)."""

    __tablename__ = "scene_cogs"

    scene_id: Mapped[int] = mapped_column(
        ForeignKey("imagery_scenes.id", ondelete="CASCADE"), primary_key=True
    )
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)
    crs: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bands: Mapped[list[Any]] = mapped_column(JSONB)
    stretch: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class AlertEvidence(Base):
    """One image chip of a parcel alert: before/after × truecolor/falsecolor PNG (a file)."""

    __tablename__ = "alert_evidence"
    __table_args__ = (
        UniqueConstraint("alert_id", "moment", "style", name="uq_alert_evidence"),
        CheckConstraint("moment IN ('before', 'after')", name="ck_alert_evidence_moment"),
        CheckConstraint("style IN ('truecolor', 'falsecolor')", name="ck_alert_evidence_style"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("parcel_alerts.id", ondelete="CASCADE"))
    moment: Mapped[str] = mapped_column(String(8))
    style: Mapped[str] = mapped_column(String(16))
    scene_id: Mapped[int] = mapped_column(ForeignKey("imagery_scenes.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    crs: Mapped[str] = mapped_column(Text)
    bounds: Mapped[list[Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
