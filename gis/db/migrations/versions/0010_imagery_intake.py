"""Imagery intake: STAC items and watch-folder scenes already seen, and the pairs detected (issue 13).

- ``imagery_intake``: one row per scene the intake has handled, from a STAC catalogue
  (``source='stac'``, item id + collection) or the watch folder (``source='watch'``, the file or
  folder name + a fingerprint). ``status``: ``processed`` (written locally, usable for
  detection), ``rejected`` (never retried: clouded over the area, asset missing or corrupt,
  not a scene) or ``failed`` (transient: retried after ``next_attempt_at``). ``reason`` says why.
- ``imagery_intake_pairs``: each (before, after) pair the intake sent to change detection, with
  the detection run it produced (or the error), so no pair is detected twice.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imagery_intake",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("collection", sa.Text, server_default="", nullable=False),
        sa.Column("item_id", sa.Text, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True)),
        sa.Column("cloud_cover", sa.Float),
        sa.Column("usable_share", sa.Float),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("local_path", sa.Text),
        sa.Column("href", sa.Text),
        sa.Column("attempts", sa.Integer, server_default="1", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("local_bytes", sa.BigInteger),
        sa.Column("properties", JSONB),
        sa.Column("footprint", Geometry("GEOMETRY", srid=4326, spatial_index=False)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("source", "collection", "item_id", name="uq_imagery_intake_item"),
        sa.CheckConstraint("source IN ('stac', 'watch')", name="ck_imagery_intake_source"),
        sa.CheckConstraint(
            "status IN ('processed', 'rejected', 'failed')", name="ck_imagery_intake_status"
        ),
        sa.CheckConstraint(
            "status = 'processed' OR reason IS NOT NULL", name="ck_imagery_intake_reason"
        ),
        sa.CheckConstraint(
            "status <> 'processed' OR local_path IS NOT NULL", name="ck_imagery_intake_path"
        ),
    )
    op.create_index("ix_imagery_intake_status", "imagery_intake", ["status"])
    op.create_index("ix_imagery_intake_acquired_at", "imagery_intake", ["acquired_at"])

    op.create_table(
        "imagery_intake_pairs",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("before_id", sa.BigInteger,
                  sa.ForeignKey("imagery_intake.id", ondelete="CASCADE"), nullable=False),
        sa.Column("after_id", sa.BigInteger,
                  sa.ForeignKey("imagery_intake.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detection_run_id", sa.Integer,
                  sa.ForeignKey("detection_runs.id", ondelete="SET NULL")),
        sa.Column("changes", sa.Integer),
        sa.Column("alerts", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("before_id", "after_id", name="uq_imagery_intake_pairs"),
        sa.CheckConstraint("status IN ('succeeded', 'failed')", name="ck_imagery_intake_pairs_status"),
        sa.CheckConstraint("status <> 'failed' OR error IS NOT NULL",
                           name="ck_imagery_intake_pairs_error"),
    )
    op.create_index("ix_imagery_intake_pairs_after_id", "imagery_intake_pairs", ["after_id"])


def downgrade() -> None:
    op.drop_index("ix_imagery_intake_pairs_after_id", table_name="imagery_intake_pairs")
    op.drop_table("imagery_intake_pairs")
    op.drop_index("ix_imagery_intake_acquired_at", table_name="imagery_intake")
    op.drop_index("ix_imagery_intake_status", table_name="imagery_intake")
    op.drop_table("imagery_intake")
