"""Land evidence (issue 14): scene COGs of stored runs, alert evidence chips, report records.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op  # noqa: F401

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
