"""Review writes at the edge: check the token's role, call the domain owner, map its errors.

Land officers confirm or dismiss a parcel alert (:func:`gis.review.review_alert`); media staff
correct an article's or a citizen's post's sentiment label (:func:`nlp.feedback.record_correction`,
stored in ``label_feedback`` for ``ioc nlp retrain``). Both owners validate the input and write the audit
row in the caller's transaction; this module only authorises (403 naming the role needed) and
turns domain errors into :class:`InvalidParameterError` / :class:`NotFoundError`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from api.auth import ALERT_REVIEW_ROLE, LABEL_CORRECTION_ROLE, Principal
from api.errors import InvalidParameterError, NotFoundError
from gis.audit import Actor
from gis.errors import InvalidValueError, RecordNotFoundError


def review_alert(
    connection: Connection,
    alert_id: int,
    status: Any,
    reviewer: Any,
    note: Any = None,
    *,
    principal: Principal,
):
    """Review one parcel alert for ``principal`` (needs the officer role); returns the
    :class:`gis.review.AlertReview`."""
    from gis.review import review_alert as review

    role = principal.require(ALERT_REVIEW_ROLE, "Reviewing parcel alerts")
    try:
        return review(
            connection, alert_id, status, reviewer, note, actor=Actor(principal.name, role, "api")
        )
    except InvalidValueError as exc:
        raise InvalidParameterError(str(exc)) from exc
    except RecordNotFoundError as exc:
        raise NotFoundError(str(exc)) from exc


def correct_article_label(
    connection: Connection,
    article_id: int,
    label: Any,
    reviewer: Any,
    note: Any = None,
    *,
    principal: Principal,
    genre: str = "article",
) -> int:
    """Record a sentiment correction of an article (``genre="article"``) or a citizen's post
    (``genre="post"``, ``article_id`` is then the post's id) for ``principal`` (needs the media
    role) through :func:`nlp.feedback.record_correction`; returns its id."""
    role = principal.require(LABEL_CORRECTION_ROLE, "Correcting sentiment labels")
    # Imported here: nlp brings scikit-learn, which the read-only API never needs.
    from nlp.errors import InputError, ItemNotFoundError
    from nlp.feedback import record_correction

    try:
        return record_correction(
            connection,
            article_id,
            label,
            reviewer,
            note,
            genre=genre,
            actor=principal.name,
            role=role,
            channel="api",
        )
    except ItemNotFoundError:
        raise NotFoundError(f"No {genre} {article_id}.") from None
    except InputError as exc:  # unknown label, bad reviewer or note
        raise InvalidParameterError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from exc


def as_int_id(value: Any, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise NotFoundError(f"No {what} '{str(value)[:60]}'.") from None
    if not 0 < number < 2**63:
        raise NotFoundError(f"No {what} '{str(value)[:60]}'.")
    return number
