"""Schema additions owned by the api work.

- pinned VN-2000 SRIDs: custom ``spatial_ref_sys`` rows whose PROJ definition carries the
  7-parameter transformation of Decision 05/2007 ("VN-2000 to WGS 84 (2)", EPSG coordinate frame
  rotations written with the position-vector signs that ``+towgs84`` expects). The API
  reprojects VN-2000 <-> WGS 84 through them so PostGIS never picks a ballpark transformation.
- publishing views: ``api_parcel_alerts`` (alerts with their parcel geometry),
  ``api_article_labels`` (latest model label + latest staff correction per article),
  ``api_articles`` and ``api_commune_sentiment`` (daily sentiment per commune).
- ``pygeoapi.jobs``: the job table of pygeoapi's PostgreSQL process manager.
- ``geom_webmercator`` on parcels and land_changes: a stored generated column (EPSG:3857, via the
  pinned transformation) so vector tiles do not reproject every polygon on every request (it
  halves a z14 parcel tile); maintained by PostgreSQL on every insert/update.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# VN-2000 -> WGS 84, Decision 05/2007 (EPSG "VN-2000 to WGS 84 (2)"), coordinate frame:
# dx dy dz (m), rx ry rz (arc-seconds), ds (ppm). +towgs84 uses the position-vector
# convention, so the rotations change sign.
TOWGS84 = "-191.90441429,-39.30318279,-111.45032835,0.00928836,-0.01975479,0.00427372,0.252906278"

# pinned SRID -> (EPSG code it stands for, PROJ definition)
PINNED_SRIDS = {
    947560: (4756, f"+proj=longlat +ellps=WGS84 +towgs84={TOWGS84} +no_defs"),
    934050: (3405, f"+proj=utm +zone=48 +ellps=WGS84 +towgs84={TOWGS84} +units=m +no_defs"),
    958970: (
        5897,
        "+proj=tmerc +lat_0=0 +lon_0=105 +k=0.9999 +x_0=500000 +y_0=0 +ellps=WGS84 "
        f"+towgs84={TOWGS84} +units=m +no_defs",
    ),
    992090: (
        9209,
        "+proj=tmerc +lat_0=0 +lon_0=105.5 +k=0.9999 +x_0=500000 +y_0=0 +ellps=WGS84 "
        f"+towgs84={TOWGS84} +units=m +no_defs",
    ),
}

LABELS_VIEW = """
CREATE VIEW api_article_labels AS
SELECT a.id AS article_id,
       s.label AS model_label,
       s.model_version,
       s.probabilities,
       s.topic,
       s.reasons,
       f.new_label AS corrected_label,
       f.reviewer AS corrected_by,
       COALESCE(f.new_label, s.label) AS label
FROM articles a
LEFT JOIN LATERAL (
    SELECT sc.label, sc.model_version, sc.probabilities, sc.topic, sc.reasons
    FROM article_scores sc WHERE sc.article_id = a.id
    ORDER BY sc.scored_at DESC, sc.id DESC LIMIT 1
) s ON true
LEFT JOIN LATERAL (
    SELECT lf.new_label, lf.reviewer
    FROM label_feedback lf WHERE lf.article_id = a.id AND lf.field = 'sentiment'
    ORDER BY lf.created_at DESC, lf.id DESC LIMIT 1
) f ON true
"""

ARTICLES_VIEW = """
CREATE VIEW api_articles AS
SELECT a.id,
       a.title,
       a.lead,
       a.url,
       a.author,
       a.published_at,
       a.language,
       ns.name AS source,
       a.relevant,
       l.label AS sentiment,
       l.model_label AS sentiment_model,
       l.corrected_label AS sentiment_corrected,
       l.model_version,
       l.probabilities AS sentiment_scores,
       l.topic,
       pl.place_codes,
       pl.place_names,
       pl.geom
FROM articles a
LEFT JOIN news_sources ns ON ns.id = a.source_id
LEFT JOIN api_article_labels l ON l.article_id = a.id
LEFT JOIN LATERAL (
    SELECT string_agg(u.code, ',' ORDER BY u.code) AS place_codes,
           string_agg(u.name, ', ' ORDER BY u.name) AS place_names,
           ST_Multi(ST_Collect(ST_PointOnSurface(u.geom)))::geometry(MultiPoint, 4326) AS geom
    FROM article_places ap JOIN admin_units u ON u.id = ap.admin_unit_id
    WHERE ap.article_id = a.id
) pl ON true
WHERE a.duplicate_of IS NULL
"""

COMMUNE_SENTIMENT_VIEW = """
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

PARCEL_ALERTS_VIEW = """
CREATE VIEW api_parcel_alerts AS
SELECT a.id, a.run_id, a.parcel_id, a.change_id, a.commune_code, a.changed_area_m2,
       a.changed_fraction, a.legal_code, a.observed_from, a.observed_to, a.rule, a.severity,
       a.review_status, a.reviewer, a.review_note, a.reviewed_at, a.created_at,
       p.sheet_number, p.parcel_number, p.land_use_code, p.geom, p.geom_webmercator
FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id
"""


def _to_webmercator(column: str, srid: int) -> str:
    pinned = {epsg: pin for pin, (epsg, _) in PINNED_SRIDS.items()}
    if srid in pinned:
        return f"ST_Transform(ST_SetSRID({column}, {pinned[srid]}), 3857)"
    return f"ST_Transform({column}, 3857)"


def upgrade() -> None:
    for srid, (_epsg, proj4) in PINNED_SRIDS.items():
        op.execute(
            "INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text) "
            f"VALUES ({srid}, NULL, NULL, NULL, '{proj4}') "
            f"ON CONFLICT (srid) DO UPDATE SET proj4text = EXCLUDED.proj4text"
        )
    for table in ("parcels", "land_changes"):
        srid = op.get_bind().exec_driver_sql(
            f"SELECT Find_SRID('public', '{table}', 'geom')"
        ).scalar()
        expr = _to_webmercator("geom", int(srid))
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN geom_webmercator geometry(MultiPolygon, 3857) "
            f"GENERATED ALWAYS AS ({expr}) STORED"
        )
    op.execute(PARCEL_ALERTS_VIEW)
    op.execute(LABELS_VIEW)
    op.execute(ARTICLES_VIEW)
    op.execute(COMMUNE_SENTIMENT_VIEW)
    op.execute("CREATE SCHEMA IF NOT EXISTS pygeoapi")
    op.execute(
        """
        CREATE TABLE pygeoapi.jobs (
            identifier varchar PRIMARY KEY,
            type varchar NOT NULL DEFAULT 'process',
            process_id varchar NOT NULL,
            created timestamp,
            started timestamp,
            finished timestamp,
            updated timestamp,
            status varchar NOT NULL,
            location varchar,
            mimetype varchar,
            message varchar,
            progress integer NOT NULL,
            output bytea
        )
        """
    )
    op.execute("CREATE INDEX ix_pygeoapi_jobs_process_id ON pygeoapi.jobs (process_id)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS pygeoapi.jobs")
    op.execute("DROP SCHEMA IF EXISTS pygeoapi")
    op.execute("DROP VIEW IF EXISTS api_commune_sentiment")
    op.execute("DROP VIEW IF EXISTS api_articles")
    op.execute("DROP VIEW IF EXISTS api_article_labels")
    op.execute("DROP VIEW IF EXISTS api_parcel_alerts")
    for table in ("parcels", "land_changes"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS geom_webmercator")
    srids = ", ".join(str(s) for s in PINNED_SRIDS)
    op.execute(f"DELETE FROM spatial_ref_sys WHERE srid IN ({srids})")
