"""Schema additions owned by the land work.

* parcels: the upsert key includes the pre-2025 commune code. After the 2025 merger several
  old communes form one new commune and each old commune numbered its map sheets from 1, so
  (commune, sheet, parcel) alone collides; the key is (commune_code, old_commune_code,
  sheet_number, parcel_number) with NULLs not distinct (PostgreSQL 15+).
* land_changes.kind: 'conversion' (built-up appears/disappears), 'seasonal' (vegetation/water/
  bare only: the crop cycle), 'other'.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE parcels DROP CONSTRAINT uq_parcels_key")
    op.execute(
        "ALTER TABLE parcels ADD CONSTRAINT uq_parcels_key UNIQUE NULLS NOT DISTINCT "
        "(commune_code, old_commune_code, sheet_number, parcel_number)"
    )
    op.execute(
        "ALTER TABLE land_changes ADD COLUMN kind varchar(16), ADD CONSTRAINT ck_land_changes_kind "
        "CHECK (kind IS NULL OR kind IN ('conversion', 'seasonal', 'other'))"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE land_changes DROP CONSTRAINT IF EXISTS ck_land_changes_kind")
    op.execute("ALTER TABLE land_changes DROP COLUMN IF EXISTS kind")
    op.execute("ALTER TABLE parcels DROP CONSTRAINT uq_parcels_key")
    op.execute(
        "ALTER TABLE parcels ADD CONSTRAINT uq_parcels_key "
        "UNIQUE (commune_code, sheet_number, parcel_number)"
    )
