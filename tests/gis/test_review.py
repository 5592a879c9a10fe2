"""Parcel-alert review has one owner (gis.review) used by the CLI and the API alike: status
checked against the one definition, reviewer required, reviewed_at cleared when an alert goes
back to 'new', and an audit row (who, role, channel, old and new value) in the same
transaction. Review statuses and cover classes are defined once."""

from __future__ import annotations

import ast
import getpass
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gis import audit
from gis.audit import Actor
from gis.cli_land import land
from gis.db.models import COVER_CLASSES, REVIEW_STATUSES
from gis.errors import InvalidValueError, RecordNotFoundError
from gis.review import review_alert

REPO = Path(__file__).resolve().parents[2]
OFFICER = Actor("tran-b", "officer", "api")


def _alert(conn) -> int:
    srid = conn.execute(text("SELECT Find_SRID('public', 'parcels', 'geom')")).scalar_one()
    run = conn.execute(
        text(
            "INSERT INTO detection_runs (status, method) VALUES ('succeeded', 'test') RETURNING id"
        )
    ).scalar_one()
    parcel = conn.execute(
        text(
            "INSERT INTO parcels (commune_code, sheet_number, parcel_number, area_m2, land_use_code, "
            "land_use_code_raw, land_use_code_version, geom) VALUES ('99001', '7', '42', 500, 'LUC', 'LUC', "
            "'2024', ST_Multi(ST_Transform(ST_SetSRID(ST_MakeEnvelope(105.91, 20.51, 105.911, 20.511), 4326), "
            ":srid))) RETURNING id"
        ),
        {"srid": srid},
    ).scalar_one()
    return conn.execute(
        text(
            "INSERT INTO parcel_alerts (run_id, parcel_id, commune_code, changed_area_m2, changed_fraction, "
            "legal_code, observed_to, rule, severity) VALUES (:r, :p, '99001', 420, 0.84, 'LUC', 'built_up', "
            "'rice_to_built', 'high') RETURNING id"
        ),
        {"r": run, "p": parcel},
    ).scalar_one()


def _row(conn, alert_id: int) -> dict:
    return dict(
        conn.execute(
            text(
                "SELECT review_status, reviewer, review_note, reviewed_at FROM parcel_alerts WHERE id = :i"
            ),
            {"i": alert_id},
        )
        .mappings()
        .one()
    )


@pytest.mark.postgis
def test_review_records_reviewer_note_time_and_audit(connection):
    alert = _alert(connection)
    review = review_alert(
        connection, alert, "confirmed", " Trần Thị B ", "xây nhà trên đất lúa", actor=OFFICER
    )
    row = _row(connection, alert)
    assert row["review_status"] == "confirmed" and row["reviewer"] == "Trần Thị B"
    assert row["review_note"] == "xây nhà trên đất lúa" and row["reviewed_at"] is not None
    assert review.reviewed_at == row["reviewed_at"]
    [entry] = audit.history(connection, "parcel_alerts", alert)
    assert entry["id"] == review.audit_id
    assert (entry["actor"], entry["role"], entry["channel"], entry["action"]) == (
        "tran-b",
        "officer",
        "api",
        "review_alert",
    )
    assert (
        entry["old_value"]["review_status"] == "new" and entry["old_value"]["reviewed_at"] is None
    )
    assert entry["new_value"]["review_status"] == "confirmed"
    assert entry["new_value"]["reviewer"] == "Trần Thị B"
    assert entry["note"] == "xây nhà trên đất lúa"
    # back to 'new': no longer reviewed, so reviewed_at is cleared
    review_alert(connection, alert, "new", "Lê Văn C", actor=OFFICER)
    assert _row(connection, alert)["reviewed_at"] is None
    history = audit.history(connection, "parcel_alerts", alert)
    assert [h["new_value"]["review_status"] for h in history] == ["confirmed", "new"]
    assert history[1]["old_value"]["review_status"] == "confirmed"


@pytest.mark.postgis
@pytest.mark.parametrize(
    "status, reviewer, note, error, words",
    [
        ("approved", "x", None, InvalidValueError, "review_status"),
        (None, "x", None, InvalidValueError, "review_status"),
        ("confirmed", "", None, InvalidValueError, "reviewer"),
        ("confirmed", 42, None, InvalidValueError, "reviewer"),
        ("confirmed", "x" * 201, None, InvalidValueError, "reviewer"),
        ("confirmed", "x", "n" * 2001, InvalidValueError, "review_note"),
    ],
)
def test_bad_reviews_are_refused_and_write_nothing(
    connection, status, reviewer, note, error, words
):
    alert = _alert(connection)
    with pytest.raises(error, match=words):
        review_alert(connection, alert, status, reviewer, note, actor=OFFICER)
    assert _row(connection, alert)["review_status"] == "new"
    assert audit.history(connection, "parcel_alerts", alert) == []


@pytest.mark.postgis
def test_unknown_alert(connection):
    with pytest.raises(RecordNotFoundError, match="No parcel alert 999999999"):
        review_alert(connection, 999_999_999, "confirmed", "x", actor=OFFICER)
    with pytest.raises(InvalidValueError, match="empty"):
        Actor(" ", "officer")
    with pytest.raises(InvalidValueError, match="role"):
        Actor("x", "mayor")


@pytest.mark.postgis
def test_the_cli_is_the_same_operation(connection):
    """``ioc land review`` used to be a raw UPDATE that set reviewed_at even for 'new' and wrote
    no audit; now it calls gis.review."""
    alert = _alert(connection)
    runner = CliRunner()
    obj = SimpleNamespace(engine=lambda: connection)
    r = runner.invoke(
        land,
        [
            "review",
            str(alert),
            "--status",
            "dismissed",
            "--reviewer",
            "cán bộ A",
            "--note",
            "lúa mùa",
        ],
        obj=obj,
    )
    assert r.exit_code == 0, r.output
    assert _row(connection, alert)["review_status"] == "dismissed"
    r = runner.invoke(
        land, ["review", str(alert), "--status", "new", "--reviewer", "cán bộ A"], obj=obj
    )
    assert r.exit_code == 0, r.output
    assert _row(connection, alert)["reviewed_at"] is None
    history = audit.history(connection, "parcel_alerts", alert)
    assert [(h["actor"], h["role"], h["channel"]) for h in history] == [
        (getpass.getuser(), None, "cli")
    ] * 2
    r = runner.invoke(land, ["review", str(alert), "--status", "new", "--reviewer", " "], obj=obj)
    assert r.exit_code == 2 and "reviewer" in r.output
    r = runner.invoke(
        land, ["review", "999999999", "--status", "confirmed", "--reviewer", "A"], obj=obj
    )
    assert r.exit_code == 2 and "No parcel alert 999999999" in r.output
    assert len(audit.history(connection, "parcel_alerts", alert)) == 2


@pytest.mark.postgis
def test_the_audit_log_is_append_only(connection):
    alert = _alert(connection)
    review_alert(connection, alert, "confirmed", "A", actor=OFFICER)
    with pytest.raises(DBAPIError, match="append-only"), connection.begin_nested():
        connection.execute(text("UPDATE audit_log SET actor = 'someone else'"))
    with pytest.raises(DBAPIError, match="append-only"), connection.begin_nested():
        connection.execute(text("DELETE FROM audit_log"))


def _tuple_literals(values: tuple[str, ...]) -> list[str]:
    """Where a literal tuple/list/set with exactly ``values`` appears outside the schema."""
    found = []
    for package in ("gis", "api", "nlp", "crawler", "ioc"):
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts or path == REPO / "gis" / "db" / "models.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Tuple | ast.List | ast.Set):
                    elements = node.elts
                elif isinstance(node, ast.Dict):
                    elements = node.values
                else:
                    continue
                if (
                    elements
                    and all(isinstance(e, ast.Constant) for e in elements)
                    and sorted(str(e.value) for e in elements) == sorted(values)
                ):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_review_statuses_and_cover_classes_are_defined_once():
    assert _tuple_literals(REVIEW_STATUSES) == []
    assert _tuple_literals(COVER_CLASSES) == []
    from gis.alerts import COVER
    from gis.land_cover import COVER_NAMES

    assert tuple(COVER_NAMES.values()) == tuple(COVER) == COVER_CLASSES
    # nlp may not import gis: its labels are kept equal to the schema's by this test
    from gis.db.models import SENTIMENT_LABELS
    from nlp.sentiment import LABELS

    assert LABELS == SENTIMENT_LABELS
    assert [f for f in _tuple_literals(SENTIMENT_LABELS) if not f.startswith("nlp/")] == []
