"""Staff corrections of citizens' posts (issue 11): ``label_feedback`` holds a post or an article.

A media officer corrects a post's sentiment the way she corrects an article's (the audited
``nlp.feedback.record_correction``; ``PATCH /collections/posts/items/{id}``, ``POST
/digest/feedback`` with ``post_id``, ``ioc nlp correct post:ID``), and retraining trains the
post head with it.

- ``label_feedback.post_id`` (``posts.id``, ON DELETE CASCADE); ``article_id`` becomes
  nullable; ``ck_label_feedback_one_item``: exactly one of the two is set. Index
  ``ix_label_feedback_post_created`` finds a post's latest correction, as
  ``ix_label_feedback_article_created`` does an article's.
- ``api_post_labels``: latest model label and latest staff correction per post (the mirror of
  ``api_article_labels``).
- ``api_posts``: ``sentiment`` is the corrected label where a post was corrected, with
  ``sentiment_model`` and ``sentiment_corrected`` beside it (as ``api_articles``);
  ``api_commune_sentiment``'s post rows count corrected labels, as its article rows do.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

POST_LABELS_VIEW = """
CREATE VIEW api_post_labels AS
SELECT p.id AS post_id,
       s.label AS model_label,
       s.model_version,
       s.probabilities,
       s.confidence,
       s.topic,
       s.reasons,
       f.new_label AS corrected_label,
       f.reviewer AS corrected_by,
       COALESCE(f.new_label, s.label) AS label
FROM posts p
LEFT JOIN LATERAL (
    SELECT sc.label, sc.model_version, sc.probabilities, sc.confidence, sc.topic, sc.reasons
    FROM post_scores sc WHERE sc.post_id = p.id
    ORDER BY sc.scored_at DESC, sc.id DESC LIMIT 1
) s ON true
LEFT JOIN LATERAL (
    SELECT lf.new_label, lf.reviewer
    FROM label_feedback lf WHERE lf.post_id = p.id AND lf.field = 'sentiment'
    ORDER BY lf.created_at DESC, lf.id DESC LIMIT 1
) f ON true
"""

POSTS_VIEW = """
CREATE VIEW api_posts AS
SELECT p.id,
       p.source,
       p.url,
       p.published_at,
       p.language,
       p.text,
       l.label AS sentiment,
       l.probabilities AS sentiment_scores,
       l.confidence AS sentiment_confidence,
       l.model_version,
       l.topic,
       pl.place_codes,
       pl.place_names,
       pl.geom,
       l.model_label AS sentiment_model,
       l.corrected_label AS sentiment_corrected
FROM posts p
LEFT JOIN api_post_labels l ON l.post_id = p.id
LEFT JOIN LATERAL (
    SELECT string_agg(u.code, ',' ORDER BY u.code) AS place_codes,
           string_agg(u.name, ', ' ORDER BY u.name) AS place_names,
           ST_Multi(ST_Collect(ST_PointOnSurface(u.geom)))::geometry(MultiPoint, 4326) AS geom
    FROM post_places pp JOIN admin_units u ON u.id = pp.admin_unit_id
    WHERE pp.post_id = p.id
) pl ON true
WHERE p.duplicate_of IS NULL
"""

_POST_SCORE_JOIN_0008 = """    JOIN LATERAL (
        SELECT sc.label FROM post_scores sc WHERE sc.post_id = p.id
        ORDER BY sc.scored_at DESC, sc.id DESC LIMIT 1
    ) s ON true
    WHERE p.published_at IS NOT NULL AND p.duplicate_of IS NULL"""
_POST_LABEL_JOIN = """    JOIN api_post_labels s ON s.post_id = p.id
    WHERE p.published_at IS NOT NULL AND p.duplicate_of IS NULL AND s.label IS NOT NULL"""


def _rev0008():
    """The views as migration 0008 created them (restored by downgrade; the commune view is
    rebuilt from 0008's text with only the post label source changed)."""
    path = Path(__file__).with_name("0008_posts.py")
    spec = importlib.util.spec_from_file_location("_ioc_migration_0008", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.alter_column("label_feedback", "article_id", existing_type=sa.BigInteger, nullable=True)
    op.add_column(
        "label_feedback",
        sa.Column(
            "post_id", sa.BigInteger, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=True
        ),
    )
    op.create_check_constraint(
        "ck_label_feedback_one_item",
        "label_feedback",
        "num_nonnulls(article_id, post_id) = 1",
    )
    op.create_index(
        "ix_label_feedback_post_created",
        "label_feedback",
        ["post_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    rev0008 = _rev0008()
    if _POST_SCORE_JOIN_0008 not in rev0008.COMMUNE_SENTIMENT_VIEW:
        raise RuntimeError("0012: the post branch of 0008's api_commune_sentiment was not found")
    op.execute("DROP VIEW IF EXISTS api_commune_sentiment")
    op.execute("DROP VIEW IF EXISTS api_posts")
    op.execute(POST_LABELS_VIEW)
    op.execute(POSTS_VIEW)
    op.execute(rev0008.COMMUNE_SENTIMENT_VIEW.replace(_POST_SCORE_JOIN_0008, _POST_LABEL_JOIN))


def downgrade() -> None:
    rev0008 = _rev0008()
    op.execute("DROP VIEW IF EXISTS api_commune_sentiment")
    op.execute("DROP VIEW IF EXISTS api_posts")
    op.execute("DROP VIEW IF EXISTS api_post_labels")
    op.execute(rev0008.POSTS_VIEW)
    op.execute(rev0008.COMMUNE_SENTIMENT_VIEW)
    # corrections of posts have no place in the 0011 schema
    op.execute("DELETE FROM label_feedback WHERE post_id IS NOT NULL")
    op.drop_index("ix_label_feedback_post_created", table_name="label_feedback")
    op.drop_constraint("ck_label_feedback_one_item", "label_feedback", type_="check")
    op.drop_column("label_feedback", "post_id")
    op.alter_column("label_feedback", "article_id", existing_type=sa.BigInteger, nullable=False)
