"""Places are linked to the unit valid at the right side of the 2025 reform (codes are reused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.store import ArticleStore
from gis.admin_units import load_reference_units

pytestmark = pytest.mark.postgis
REPO = Path(__file__).resolve().parents[2]


def test_reused_code_resolves_by_validity(engine) -> None:
    load_reference_units(engine, REPO / "data" / "admin")
    store = ArticleStore(engine)
    with engine.connect() as conn:
        old_id = store._unit_id(conn, "13285", "old")
        new_id = store._unit_id(conn, "13285", "new")
        default_id = store._unit_id(conn, "13285")
        names = dict(
            conn.execute(
                __import__("sqlalchemy").text(
                    "SELECT id, name FROM admin_units WHERE code = '13285'"
                )
            ).all()
        )
    assert old_id != new_id
    assert names[old_id] == "Quang Trung" and names[new_id] == "Phủ Lý"
    assert default_id == new_id
