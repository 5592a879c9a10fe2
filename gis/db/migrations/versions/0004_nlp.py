"""Schema additions owned by the nlp work: indexes for the digest and retraining queries.

The digest reads the latest score and the latest correction of each article; these composite
indexes make those DISTINCT ON queries index scans. No new tables or columns are needed:
article_scores (label, probabilities, topic, topic_scores, reasons), article_places and
label_feedback in schema v1 hold everything nlp writes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_article_scores_article_scored "
        "ON article_scores (article_id, scored_at DESC, id DESC)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_label_feedback_article_created "
        "ON label_feedback (article_id, created_at DESC, id DESC)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_label_feedback_article_created")
    op.execute("DROP INDEX IF EXISTS ix_article_scores_article_scored")
