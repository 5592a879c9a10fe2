"""Idempotent detection runs (input fingerprint) and one alert per parcel and run listing every
rule (issue 12).

- ``detection_runs.input_key``: sha256 of the run's identity (content fingerprints of the two
  scenes' rasters, method, model version and the parameters that change the result); a run
  stored again with the same key updates the earlier run instead of duplicating it
  (``gis.change.store.store_run``); ``updated_at`` says when that last happened.
- ``parcel_alerts.rules``: every rule that fired on the parcel in the run, highest severity
  first; ``rule`` stays the first of them (the rule that set ``severity``). One alert per
  (run, parcel): the unique key ``(run_id, parcel_id, rule)`` becomes ``(run_id, parcel_id)``;
  existing rows are merged (the highest-severity row is kept, with the review of a reviewed
  duplicate when it had none).
- ``parcel_alerts.superseded_at``: a reviewed alert that a re-run of its run no longer raises
  is kept (reviews are never lost silently) and stamped here.
- ``api_parcel_alerts`` (migration 0005) gains ``rules`` (comma-separated text: the API's
  filters and HTML tables handle text) and ``superseded_at``, appended so views built on it
  keep working.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SEVERITY_RANK = "CASE {col} WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END"

VIEW_COLUMNS = """
SELECT a.id, a.run_id, a.parcel_id, a.change_id, a.commune_code, a.changed_area_m2,
       a.changed_fraction, a.legal_code, a.observed_from, a.observed_to, a.rule, a.severity,
       a.review_status, a.reviewer, a.review_note, a.reviewed_at, a.created_at,
       p.sheet_number, p.parcel_number, p.land_use_code, p.geom, p.geom_webmercator{extra}
FROM parcel_alerts a JOIN parcels p ON p.id = a.parcel_id
"""

# rows inserted without `rules` (by hand, older tools) read as their one rule
RULES_TEXT = (
    ",\n       array_to_string(CASE WHEN cardinality(a.rules) = 0 THEN ARRAY[a.rule] "
    "ELSE a.rules END, ',') AS rules,\n       a.superseded_at"
)


def upgrade() -> None:
    op.add_column("detection_runs", sa.Column("input_key", sa.String(64)))
    op.add_column("detection_runs", sa.Column("updated_at", sa.DateTime(timezone=True)))
    op.create_index("ix_detection_runs_input_key", "detection_runs", ["input_key"])

    op.add_column(
        "parcel_alerts",
        sa.Column("rules", postgresql.ARRAY(sa.String(64)), nullable=False,
                  server_default=sa.text("'{}'")),
    )
    op.add_column("parcel_alerts", sa.Column("superseded_at", sa.DateTime(timezone=True)))
    rank = SEVERITY_RANK.format(col="severity")
    # Merge the alerts of one (run, parcel): keep the highest-severity row (larger area, then
    # lower id on ties), list every rule on it; a review on a dropped duplicate moves to it.
    op.execute(f"""
        WITH ranked AS (
            SELECT id, run_id, parcel_id, rule, review_status, reviewer, review_note,
                   reviewed_at,
                   row_number() OVER (PARTITION BY run_id, parcel_id
                       ORDER BY {rank} DESC, changed_area_m2 DESC, id) AS n,
                   array_agg(rule) OVER (PARTITION BY run_id, parcel_id
                       ORDER BY {rank} DESC, changed_area_m2 DESC, id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS all_rules
            FROM parcel_alerts
        ),
        reviewed AS (
            SELECT DISTINCT ON (run_id, parcel_id) run_id, parcel_id, review_status, reviewer,
                   review_note, reviewed_at
            FROM parcel_alerts WHERE review_status <> 'new'
            ORDER BY run_id, parcel_id, reviewed_at DESC NULLS LAST, id DESC
        )
        UPDATE parcel_alerts a
        SET rules = r.all_rules,
            review_status = CASE WHEN a.review_status = 'new' AND v.run_id IS NOT NULL
                                 THEN v.review_status ELSE a.review_status END,
            reviewer = CASE WHEN a.review_status = 'new' AND v.run_id IS NOT NULL
                            THEN v.reviewer ELSE a.reviewer END,
            review_note = CASE WHEN a.review_status = 'new' AND v.run_id IS NOT NULL
                               THEN v.review_note ELSE a.review_note END,
            reviewed_at = CASE WHEN a.review_status = 'new' AND v.run_id IS NOT NULL
                               THEN v.reviewed_at ELSE a.reviewed_at END
        FROM ranked r
        LEFT JOIN reviewed v ON v.run_id = r.run_id AND v.parcel_id = r.parcel_id
        WHERE a.id = r.id AND r.n = 1
    """)
    op.execute("""
        DELETE FROM parcel_alerts a
        USING parcel_alerts k
        WHERE k.run_id = a.run_id AND k.parcel_id = a.parcel_id AND k.id <> a.id
          AND cardinality(k.rules) > 0 AND cardinality(a.rules) = 0
    """)
    op.drop_constraint("uq_parcel_alerts_run_parcel_rule", "parcel_alerts", type_="unique")
    op.create_unique_constraint("uq_parcel_alerts_run_parcel", "parcel_alerts",
                                ["run_id", "parcel_id"])
    op.create_check_constraint("ck_parcel_alerts_rules", "parcel_alerts",
                               "cardinality(rules) = 0 OR rules[1] = rule")
    op.execute("CREATE OR REPLACE VIEW api_parcel_alerts AS" + VIEW_COLUMNS.format(extra=RULES_TEXT))


def downgrade() -> None:
    # the view of 0005 (a view cannot lose columns in place)
    op.execute("DROP VIEW IF EXISTS api_parcel_alerts")
    op.execute("CREATE VIEW api_parcel_alerts AS" + VIEW_COLUMNS.format(extra=""))
    op.drop_constraint("ck_parcel_alerts_rules", "parcel_alerts", type_="check")
    op.drop_constraint("uq_parcel_alerts_run_parcel", "parcel_alerts", type_="unique")
    # one row per rule again: the other rules get a copy of the alert (review included)
    op.execute("""
        INSERT INTO parcel_alerts (run_id, parcel_id, change_id, commune_code, changed_area_m2,
            changed_fraction, legal_code, observed_from, observed_to, rule, severity,
            review_status, reviewer, review_note, reviewed_at, created_at)
        SELECT a.run_id, a.parcel_id, a.change_id, a.commune_code, a.changed_area_m2,
               a.changed_fraction, a.legal_code, a.observed_from, a.observed_to, r.rule,
               a.severity, a.review_status, a.reviewer, a.review_note, a.reviewed_at,
               a.created_at
        FROM parcel_alerts a, unnest(a.rules) AS r(rule)
        WHERE r.rule <> a.rule
    """)
    op.create_unique_constraint("uq_parcel_alerts_run_parcel_rule", "parcel_alerts",
                                ["run_id", "parcel_id", "rule"])
    op.drop_column("parcel_alerts", "superseded_at")
    op.drop_column("parcel_alerts", "rules")
    op.drop_index("ix_detection_runs_input_key", table_name="detection_runs")
    op.drop_column("detection_runs", "updated_at")
    op.drop_column("detection_runs", "input_key")
