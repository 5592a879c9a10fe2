"""Scheduled job runs, stored digests, the scheduler's job store (issue 13).

- ``job_runs``: one row per run of a scheduled job of ``ioc run`` (job, start, end, status,
  counts, error, host and pid of the process that ran it). A row left ``running`` by a killed
  process is marked ``failed`` by the next process that takes that job's advisory lock.
- ``stored_digests``: the daily digest as built on its day (HTML, PDF, JSON), so past digests
  are served as they were, without being rebuilt.
- ``apscheduler_jobs``: APScheduler 3's SQLAlchemyJobStore table (its own layout), created
  here so the schema has one owner.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("counts", JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("trigger", sa.String(16), server_default="schedule", nullable=False),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="ck_job_runs_status"),
        sa.CheckConstraint("trigger IN ('schedule', 'manual')", name="ck_job_runs_trigger"),
        sa.CheckConstraint("status = 'running' OR finished_at IS NOT NULL", name="ck_job_runs_finished"),
        sa.CheckConstraint("status <> 'failed' OR error IS NOT NULL", name="ck_job_runs_failed_reason"),
    )
    op.create_index("ix_job_runs_job_started_at", "job_runs", ["job", "started_at"])
    op.create_index("ix_job_runs_status", "job_runs", ["status"])

    op.create_table(
        "stored_digests",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("pdf", sa.LargeBinary),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("pdf_error", sa.Text),
        sa.Column("built_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("run_id", sa.BigInteger, sa.ForeignKey("job_runs.id", ondelete="SET NULL")),
        sa.Column("delivery", JSONB),
        sa.CheckConstraint("pdf IS NOT NULL OR pdf_error IS NOT NULL", name="ck_stored_digests_pdf"),
    )

    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25)),
        sa.Column("job_state", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])


def downgrade() -> None:
    op.drop_index("ix_apscheduler_jobs_next_run_time", table_name="apscheduler_jobs")
    op.drop_table("apscheduler_jobs")
    op.drop_table("stored_digests")
    op.drop_index("ix_job_runs_status", table_name="job_runs")
    op.drop_index("ix_job_runs_job_started_at", table_name="job_runs")
    op.drop_table("job_runs")
