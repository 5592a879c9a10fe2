"""Token roles and the audit trail of reviews and corrections (issue 12).

``audit_log``: one row per review of a parcel alert or correction of an article label, written
in the same transaction as the change: who (the token's name, or the system user at the
command line), with which role, when, through which channel (api, cli), the action, the target
row (table + id), its old and new values (JSONB) and the note. Rows are append-only: a trigger
refuses UPDATE and DELETE.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APPEND_ONLY = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: rows cannot be changed or deleted';
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("role", sa.String(16)),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target_table", sa.String(64), nullable=False),
        sa.Column("target_id", sa.BigInteger, nullable=False),
        sa.Column("old_value", postgresql.JSONB),
        sa.Column("new_value", postgresql.JSONB),
        sa.Column("note", sa.Text),
        sa.CheckConstraint("role IN ('admin', 'officer', 'media')", name="ck_audit_log_role"),
        sa.CheckConstraint("channel IN ('api', 'cli')", name="ck_audit_log_channel"),
        sa.CheckConstraint("length(btrim(actor)) > 0", name="ck_audit_log_actor"),
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target_table", "target_id"])
    op.create_index("ix_audit_log_occurred_at", "audit_log", ["occurred_at"])
    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER tr_audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tr_audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_index("ix_audit_log_occurred_at", table_name="audit_log")
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    op.drop_table("audit_log")
