"""Land evidence (issue 14): scene COGs of stored runs and alert evidence chips.

- ``scene_cogs``: the cloud-optimised GeoTIFF kept for a scene a stored run read (one per
  ``imagery_scenes`` row; several rows of the same content share one file, named by the
  scene's content fingerprint): its path under the state folder, the bands it holds (B02, B03,
  B04, B08 in that order), its CRS and size, and the per-band stretch (2nd and 98th percentile
  of the valid pixels) that map tiles and chips use.
- ``alert_evidence``: the image chips of a parcel alert: before/after × true colour / NIR false
  colour PNGs around the parcel, with the parcel outline and the change polygons drawn, made
  when the alert is created (``gis.evidence``); files under the state folder.
- ``api_parcel_alerts`` gains ``evidence_before`` and ``evidence_after``: the server-relative
  href of the alert's before/after chip (``?style=falsecolor`` for the NIR composite), NULL when
  the alert has no imagery.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# api_parcel_alerts as of 0007, then the evidence hrefs (appended: views built on it keep working)
VIEW_0007 = """
SELECT a.id, a.run_id, a.parcel_id, a.change_id, a.commune_code, a.changed_area_m2,
       a.changed_fraction, a.legal_code, a.observed_from, a.observed_to, a.rule, a.severity,
       a.review_status, a.reviewer, a.review_note, a.reviewed_at, a.created_at,
       p.sheet_number, p.parcel_number, p.land_use_code, p.geom, p.geom_webmercator,
       array_to_string(CASE WHEN cardinality(a.rules) = 0 THEN ARRAY[a.rule] ELSE a.rules END, ',') AS rules,
       a.superseded_at{extra}
FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id
"""

EVIDENCE_HREF = """,
       CASE WHEN EXISTS (SELECT 1 FROM alert_evidence e WHERE e.alert_id = a.id
                         AND e.moment = '{moment}')
            THEN '/collections/parcel-alerts/items/' || a.id || '/evidence/{moment}.png' END
         AS evidence_{moment}"""


def upgrade() -> None:
    op.create_table(
        "scene_cogs",
        sa.Column("scene_id", sa.Integer,
                  sa.ForeignKey("imagery_scenes.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("crs", sa.Text, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("bands", JSONB, nullable=False),
        sa.Column("stretch", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )
    op.create_table(
        "alert_evidence",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("alert_id", sa.BigInteger,
                  sa.ForeignKey("parcel_alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("moment", sa.String(8), nullable=False),
        sa.Column("style", sa.String(16), nullable=False),
        sa.Column("scene_id", sa.Integer,
                  sa.ForeignKey("imagery_scenes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("crs", sa.Text, nullable=False),
        sa.Column("bounds", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.UniqueConstraint("alert_id", "moment", "style", name="uq_alert_evidence"),
        sa.CheckConstraint("moment IN ('before', 'after')", name="ck_alert_evidence_moment"),
        sa.CheckConstraint("style IN ('truecolor', 'falsecolor')", name="ck_alert_evidence_style"),
    )
    extra = EVIDENCE_HREF.format(moment="before") + EVIDENCE_HREF.format(moment="after")
    op.execute("CREATE OR REPLACE VIEW api_parcel_alerts AS" + VIEW_0007.format(extra=extra))


def downgrade() -> None:
    # a view cannot lose columns in place
    op.execute("DROP VIEW IF EXISTS api_parcel_alerts")
    op.execute("CREATE VIEW api_parcel_alerts AS" + VIEW_0007.format(extra=""))
    op.drop_table("alert_evidence")
    op.drop_table("scene_cogs")
