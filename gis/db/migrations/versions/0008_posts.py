"""Citizens' posts next to articles; genre in the published sentiment views (issue 11).

Posts (social-media posts, comments, forum messages imported by ``ioc posts import``) get
tables of their own rather than a ``kind`` column on ``articles``:

- a post has no title and often no URL, while ``articles`` requires both (a unique canonical
  URL is the article's identity);
- its identity is different: the canonical URL when there is one, else the platform's post id,
  else (source, author, time, text) — ``post_key`` is the SHA-256 of that, so re-importing an
  export updates instead of duplicating; the same text posted by two people is two posts
  (``duplicate_of`` only links exact copies of longer texts, as spam or copy-paste campaigns);
- the crawler's URL/near-duplicate lookups, the retraining corrections and ``api_articles``
  read ``articles``: posts must not leak into them;
- its author is a private person: ``author`` is stored, not published.

``post_scores`` and ``post_places`` mirror ``article_scores`` / ``article_places`` (same
columns, plus ``genre`` and ``confidence`` of the scorer), so the views read both the same way.

Views: ``api_posts`` (the ``posts`` collection) and ``api_commune_sentiment`` recreated with a
``genre`` column ('article' | 'post'): one row per commune, day and genre, id
``<code>:<YYYY-MM-DD>:<genre>``; ``articles`` counts the items of the row's genre.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

POSTS_VIEW = """
CREATE VIEW api_posts AS
SELECT p.id,
       p.source,
       p.url,
       p.published_at,
       p.language,
       p.text,
       s.label AS sentiment,
       s.probabilities AS sentiment_scores,
       s.confidence AS sentiment_confidence,
       s.model_version,
       s.topic,
       pl.place_codes,
       pl.place_names,
       pl.geom
FROM posts p
LEFT JOIN LATERAL (
    SELECT sc.label, sc.probabilities, sc.confidence, sc.model_version, sc.topic
    FROM post_scores sc WHERE sc.post_id = p.id
    ORDER BY sc.scored_at DESC, sc.id DESC LIMIT 1
) s ON true
LEFT JOIN LATERAL (
    SELECT string_agg(u.code, ',' ORDER BY u.code) AS place_codes,
           string_agg(u.name, ', ' ORDER BY u.name) AS place_names,
           ST_Multi(ST_Collect(ST_PointOnSurface(u.geom)))::geometry(MultiPoint, 4326) AS geom
    FROM post_places pp JOIN admin_units u ON u.id = pp.admin_unit_id
    WHERE pp.post_id = p.id
) pl ON true
WHERE p.duplicate_of IS NULL
"""

COMMUNE_SENTIMENT_VIEW = """
CREATE VIEW api_commune_sentiment AS
SELECT u.code || ':' || to_char(d.day, 'YYYY-MM-DD') || ':' || d.genre AS id,
       u.code AS commune_code,
       u.name AS commune_name,
       u.valid_to IS NULL AS current_unit,
       d.day,
       d.genre,
       d.articles,
       d.negative,
       d.neutral,
       d.positive,
       round((d.positive - d.negative)::numeric / d.articles, 3)::float8 AS sentiment_index,
       round(d.negative::numeric / d.articles, 3)::float8 AS negative_share,
       u.geom
FROM (
    SELECT ap.admin_unit_id,
           (a.published_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day,
           'article'::text AS genre,
           count(*)::int AS articles,
           (count(*) FILTER (WHERE l.label = 'negative'))::int AS negative,
           (count(*) FILTER (WHERE l.label = 'neutral'))::int AS neutral,
           (count(*) FILTER (WHERE l.label = 'positive'))::int AS positive
    FROM articles a
    JOIN article_places ap ON ap.article_id = a.id
    JOIN api_article_labels l ON l.article_id = a.id
    WHERE a.published_at IS NOT NULL AND a.duplicate_of IS NULL AND l.label IS NOT NULL
    GROUP BY ap.admin_unit_id, day
    UNION ALL
    SELECT pp.admin_unit_id,
           (p.published_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day,
           'post'::text AS genre,
           count(*)::int AS articles,
           (count(*) FILTER (WHERE s.label = 'negative'))::int AS negative,
           (count(*) FILTER (WHERE s.label = 'neutral'))::int AS neutral,
           (count(*) FILTER (WHERE s.label = 'positive'))::int AS positive
    FROM posts p
    JOIN post_places pp ON pp.post_id = p.id
    JOIN LATERAL (
        SELECT sc.label FROM post_scores sc WHERE sc.post_id = p.id
        ORDER BY sc.scored_at DESC, sc.id DESC LIMIT 1
    ) s ON true
    WHERE p.published_at IS NOT NULL AND p.duplicate_of IS NULL
    GROUP BY pp.admin_unit_id, day
) d
JOIN admin_units u ON u.id = d.admin_unit_id AND u.level = 'commune'
"""

# as created by 0005 (restored by downgrade)
COMMUNE_SENTIMENT_VIEW_0005 = """
CREATE VIEW api_commune_sentiment AS
SELECT u.code || ':' || to_char(d.day, 'YYYY-MM-DD') AS id,
       u.code AS commune_code,
       u.name AS commune_name,
       u.valid_to IS NULL AS current_unit,
       d.day,
       d.articles,
       d.negative,
       d.neutral,
       d.positive,
       round((d.positive - d.negative)::numeric / d.articles, 3)::float8 AS sentiment_index,
       round(d.negative::numeric / d.articles, 3)::float8 AS negative_share,
       u.geom
FROM (
    SELECT ap.admin_unit_id,
           (a.published_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS day,
           count(*)::int AS articles,
           (count(*) FILTER (WHERE l.label = 'negative'))::int AS negative,
           (count(*) FILTER (WHERE l.label = 'neutral'))::int AS neutral,
           (count(*) FILTER (WHERE l.label = 'positive'))::int AS positive
    FROM articles a
    JOIN article_places ap ON ap.article_id = a.id
    JOIN api_article_labels l ON l.article_id = a.id
    WHERE a.published_at IS NOT NULL AND a.duplicate_of IS NULL AND l.label IS NOT NULL
    GROUP BY ap.admin_unit_id, day
) d
JOIN admin_units u ON u.id = d.admin_unit_id AND u.level = 'commune'
"""


def _ts(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def upgrade() -> None:
    op.create_table(
        "posts",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("post_key", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.String(64)),
        sa.Column("external_id", sa.Text),
        sa.Column("url", sa.Text),
        sa.Column("canonical_url", sa.Text),
        sa.Column("author", sa.Text),
        _ts("published_at"),
        _ts("imported_at", server_default=sa.func.now(), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("language", sa.String(8)),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("duplicate_of", sa.BigInteger, sa.ForeignKey("posts.id", ondelete="SET NULL")),
        sa.Column("extra", postgresql.JSONB),
        sa.CheckConstraint("length(btrim(text)) > 0", name="ck_posts_text"),
        sa.CheckConstraint("url IS NULL OR url ~ '^https?://'", name="ck_posts_url"),
        sa.CheckConstraint("duplicate_of IS NULL OR duplicate_of <> id", name="ck_posts_not_self_duplicate"),
    )
    op.create_index("ix_posts_published_at", "posts", ["published_at"])
    op.create_index("ix_posts_content_hash", "posts", ["content_hash"])
    op.create_index("ix_posts_canonical_url", "posts", ["canonical_url"])

    op.create_table(
        "post_scores",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("post_id", sa.BigInteger, sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("genre", sa.String(16), nullable=False, server_default="post"),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("probabilities", postgresql.JSONB, nullable=False),
        sa.Column("confidence", sa.Float),
        sa.Column("topic", sa.String(48)),
        sa.Column("topic_scores", postgresql.JSONB),
        sa.Column("reasons", postgresql.JSONB),
        _ts("scored_at", server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("post_id", "model_version", name="uq_post_scores_post_model"),
        sa.CheckConstraint("label IN ('negative', 'neutral', 'positive')", name="ck_post_scores_label"),
    )
    op.create_index("ix_post_scores_post_id", "post_scores", ["post_id"])

    op.create_table(
        "post_places",
        sa.Column("post_id", sa.BigInteger, sa.ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("admin_unit_id", sa.Integer, sa.ForeignKey("admin_units.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("mention", sa.Text),
        sa.Column("confidence", sa.Float),
    )

    op.execute(POSTS_VIEW)
    op.execute("DROP VIEW IF EXISTS api_commune_sentiment")
    op.execute(COMMUNE_SENTIMENT_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS api_commune_sentiment")
    op.execute(COMMUNE_SENTIMENT_VIEW_0005)
    op.execute("DROP VIEW IF EXISTS api_posts")
    op.drop_table("post_places")
    op.drop_table("post_scores")
    op.drop_table("posts")
