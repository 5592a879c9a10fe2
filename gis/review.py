"""Review of parcel alerts by land officers: the one owner of the operation.

``ioc land review`` and the API's Features Part 4 writes (``PATCH``/``PUT`` on
``/collections/parcel-alerts/items/{id}``) both call :func:`review_alert`, so the rules are
the same wherever a review comes from:

- the status is one of :data:`gis.db.models.REVIEW_STATUSES` (``new``, ``confirmed``,
  ``dismissed``);
- the reviewer (a person's name, at most 200 characters) is required, the note is optional
  (at most 2,000 characters);
- ``reviewed_at`` is the time of the review, and is cleared when the alert goes back to ``new``
  (it is no longer reviewed);
- the alert row is locked, changed and one :mod:`gis.audit` row (old and new review fields,
  actor, role, channel) written in the caller's transaction: both or neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from gis import audit
from gis.audit import Actor
from gis.db.models import REVIEW_STATUSES
from gis.errors import InvalidValueError, RecordNotFoundError

REVIEWER_MAX = 200
NOTE_MAX = 2000
REVIEW_FIELDS = ("review_status", "reviewer", "review_note", "reviewed_at")


@dataclass(frozen=True)
class AlertReview:
    """The review fields of an alert after :func:`review_alert`."""

    alert_id: int
    review_status: str
    reviewer: str
    review_note: str | None
    reviewed_at: datetime | None
    audit_id: int


def clean_text(value: Any, name: str, *, required: bool, max_len: int) -> str | None:
    """A stripped string, or None when optional and empty; InvalidValueError naming ``name``.

    >>> clean_text("  Trần Thị B ", "reviewer", required=True, max_len=200)
    'Trần Thị B'
    >>> clean_text(" ", "review_note", required=False, max_len=10) is None
    True
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidValueError(f"'{name}' is required.")
        return None
    if not isinstance(value, str):
        raise InvalidValueError(f"'{name}' must be a string, got {type(value).__name__}.")
    value = value.strip()
    if len(value) > max_len:
        raise InvalidValueError(f"'{name}' is longer than {max_len} characters.")
    return value


def check_status(status: Any) -> str:
    """``status`` if it is a review status, else InvalidValueError naming the allowed ones."""
    if not isinstance(status, str) or status not in REVIEW_STATUSES:
        raise InvalidValueError(
            f"'review_status' must be one of {', '.join(REVIEW_STATUSES)}, got {str(status)[:40]!r}."
        )
    return status


def review_alert(
    connection: Connection,
    alert_id: int,
    status: Any,
    reviewer: Any,
    note: Any = None,
    *,
    actor: Actor,
) -> AlertReview:
    """Set the review of one parcel alert and audit it, in the caller's transaction.

    Parameters
    ----------
    connection
        A connection inside a transaction (``engine.begin()``); nothing is committed here.
    alert_id
        ``parcel_alerts.id``.
    status
        ``confirmed``, ``dismissed`` or ``new`` (back to unreviewed: ``reviewed_at`` cleared).
    reviewer
        The person who checked the alert (name or account).
    note
        Field note, optional.
    actor
        Who makes the change (token name and role, or the system user at the command line).

    Raises
    ------
    InvalidValueError
        Unknown status, missing or too long reviewer, too long note.
    RecordNotFoundError
        No parcel alert ``alert_id``.
    """
    status_ = check_status(status)
    reviewer_ = clean_text(reviewer, "reviewer", required=True, max_len=REVIEWER_MAX)
    note_ = clean_text(note, "review_note", required=False, max_len=NOTE_MAX)
    if isinstance(alert_id, bool) or not isinstance(alert_id, int) or not 0 < alert_id < 2**63:
        raise RecordNotFoundError(f"No parcel alert {str(alert_id)[:40]}.")
    old = (
        connection.execute(
            text(
                "SELECT review_status, reviewer, review_note, reviewed_at FROM parcel_alerts "
                "WHERE id = :id FOR UPDATE"
            ),
            {"id": alert_id},
        )
        .mappings()
        .first()
    )
    if old is None:
        raise RecordNotFoundError(f"No parcel alert {alert_id}.")
    new = (
        connection.execute(
            text(
                "UPDATE parcel_alerts SET review_status = CAST(:s AS varchar), reviewer = :r, "
                "review_note = :n, "
                "reviewed_at = CASE WHEN CAST(:s AS varchar) = 'new' THEN NULL ELSE now() END "
                "WHERE id = :id RETURNING review_status, reviewer, review_note, reviewed_at"
            ),
            {"s": status_, "r": reviewer_, "n": note_, "id": alert_id},
        )
        .mappings()
        .one()
    )
    audit_id = audit.record(
        connection,
        actor,
        "review_alert",
        "parcel_alerts",
        alert_id,
        {k: old[k] for k in REVIEW_FIELDS},
        {k: new[k] for k in REVIEW_FIELDS},
        note_,
    )
    return AlertReview(
        alert_id,
        new["review_status"],
        new["reviewer"],
        new["review_note"],
        new["reviewed_at"],
        audit_id,
    )
