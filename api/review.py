"""Review writes: land officers confirm or dismiss a parcel alert; media staff correct an
article's sentiment label (stored in ``label_feedback`` for ``ioc nlp retrain``).

Each function runs in one transaction on the connection it is given and validates its input
first, raising :class:`InvalidParameterError` / :class:`NotFoundError` with one sentence.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from api.errors import InvalidParameterError, NotFoundError

REVIEW_STATUSES = ("new", "confirmed", "dismissed")


def _text(value: Any, name: str, required: bool, max_len: int = 2000) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidParameterError(f"'{name}' is required.")
        return None
    if not isinstance(value, str):
        raise InvalidParameterError(f"'{name}' must be a string.")
    if len(value) > max_len:
        raise InvalidParameterError(f"'{name}' is longer than {max_len} characters.")
    return value.strip()


def review_alert(connection: Connection, alert_id: int, status: Any, reviewer: Any, note: Any = None) -> None:
    """Set the review status of one parcel alert (``confirmed``/``dismissed``/``new``)."""
    if status not in REVIEW_STATUSES:
        raise InvalidParameterError(
            f"review_status must be one of {', '.join(REVIEW_STATUSES)}, got {str(status)[:40]!r}."
        )
    reviewer_ = _text(reviewer, "reviewer", required=True, max_len=200)
    note_ = _text(note, "review_note", required=False)
    row = connection.execute(
        text(
            "UPDATE parcel_alerts SET review_status = CAST(:s AS varchar), reviewer = :r, review_note = :n, "
            "reviewed_at = CASE WHEN CAST(:s AS varchar) = 'new' THEN NULL ELSE now() END WHERE id = :id RETURNING id"
        ),
        {"s": status, "r": reviewer_, "n": note_, "id": alert_id},
    ).first()
    if row is None:
        raise NotFoundError(f"No parcel alert {alert_id}.")


def correct_article_label(
    connection: Connection, article_id: int, label: Any, reviewer: Any, note: Any = None
) -> int:
    """Record a sentiment correction through :func:`nlp.feedback.record_correction` (the one
    writer of ``label_feedback``); returns its id."""
    # Imported here: nlp brings scikit-learn, which the read-only API never needs.
    from nlp.errors import ArticleNotFoundError, InputError
    from nlp.feedback import record_correction

    reviewer_ = _text(reviewer, "reviewer", required=True, max_len=200)
    note_ = _text(note, "note", required=False)
    try:
        return record_correction(connection, article_id, label, reviewer_, note_)
    except ArticleNotFoundError:
        raise NotFoundError(f"No article {article_id}.") from None
    except InputError as exc:  # unknown label
        raise InvalidParameterError(str(exc)) from exc


def as_int_id(value: Any, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise NotFoundError(f"No {what} '{str(value)[:60]}'.") from None
    if not 0 < number < 2**63:
        raise NotFoundError(f"No {what} '{str(value)[:60]}'.")
    return number
