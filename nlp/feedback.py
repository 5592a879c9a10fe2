"""Label corrections by media staff (table ``label_feedback``) and reading them for retraining.

:func:`record_correction` is the one owner of the operation: the API (Features Part 4 ``PATCH``
on ``/collections/articles/items/{id}`` and ``POST /digest/feedback``) only authenticates and
calls it. It validates the label, reviewer and note, stores the correction and writes the
audit row (``audit_log``, migration 0006: who, role, channel, old and new label) in the same
transaction.

Takes a SQLAlchemy Connection passed in; plain SQL text against the tables of
``gis/db/models.py`` (nlp does not import gis). The caller owns the transaction.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from nlp.errors import ArticleNotFoundError, InputError
from nlp.sentiment import LABELS, TOPICS

REVIEWER_MAX = 200
NOTE_MAX = 2000


def record_correction(
    connection: Any,
    article_id: int,
    label: str,
    reviewer: str,
    note: str | None = None,
    field: str = "sentiment",
    *,
    actor: str | None = None,
    role: str | None = None,
    channel: str = "api",
) -> int:
    """Store one correction and return its id.

    Parameters
    ----------
    connection : sqlalchemy.engine.Connection
    article_id : int
        ``articles.id`` of the corrected article.
    label : str
        New label: negative, neutral or positive (``field="sentiment"``) or one of the 12
        topics (``field="topic"``).
    reviewer : str
        Who corrected it (from the API's authentication).
    note : str, optional
        At most 2,000 characters.
    actor, role, channel : str, optional
        Who makes the change for the audit trail: the API token's name and the role it was
        authorised with, ``channel`` "api" or "cli". ``actor`` defaults to ``reviewer``.

    Raises
    ------
    ArticleNotFoundError
        No such article (an :class:`InputError`).
    InputError
        Unknown label or field, empty reviewer.
    """
    if field not in ("sentiment", "topic"):
        raise InputError(f"field {field!r} cannot be corrected: use 'sentiment' or 'topic'")
    allowed = LABELS if field == "sentiment" else TOPICS
    if not isinstance(label, str) or label not in allowed:
        raise InputError(f"label {str(label)[:40]!r} is not one of {', '.join(allowed)}")
    if reviewer is not None and not isinstance(reviewer, str):
        raise InputError(f"reviewer must be a string, got {type(reviewer).__name__}")
    if not reviewer or not reviewer.strip():
        raise InputError("reviewer is empty: a correction needs the name of who made it")
    if len(reviewer.strip()) > REVIEWER_MAX:
        raise InputError(f"reviewer is longer than {REVIEWER_MAX} characters")
    if note is not None and not isinstance(note, str):
        raise InputError(f"note must be a string, got {type(note).__name__}")
    if note is not None:
        note = note.strip() or None
    if note is not None and len(note) > NOTE_MAX:
        raise InputError(f"note is longer than {NOTE_MAX} characters")
    if (
        isinstance(article_id, bool)
        or not isinstance(article_id, int)
        or not 0 < article_id < 2**63
    ):
        raise ArticleNotFoundError(f"article {str(article_id)[:40]} does not exist")
    exists = connection.execute(
        text("SELECT 1 FROM articles WHERE id = :a"), {"a": article_id}
    ).first()
    if exists is None:
        raise ArticleNotFoundError(f"article {article_id} does not exist")
    column = "label" if field == "sentiment" else "topic"
    # The label the reviewer saw: the last correction if there is one, else the model's.
    old = connection.execute(
        text(
            "SELECT new_label FROM label_feedback WHERE article_id = :a AND field = :f "
            "ORDER BY created_at DESC, id DESC LIMIT 1"
        ),
        {"a": article_id, "f": field},
    ).scalar()
    if old is None:
        old = connection.execute(
            text(
                f"SELECT {column} FROM article_scores WHERE article_id = :a "
                "ORDER BY scored_at DESC, id DESC LIMIT 1"
            ),
            {"a": article_id},
        ).scalar()
    reviewer = reviewer.strip()
    feedback_id = int(
        connection.execute(
            text(
                "INSERT INTO label_feedback (article_id, field, old_label, new_label, reviewer, note) "
                "VALUES (:a, :f, :o, :n, :r, :note) RETURNING id"
            ),
            {"a": article_id, "f": field, "o": old, "n": label, "r": reviewer, "note": note},
        ).scalar_one()
    )
    # the audit row (gis/db/models.py AuditEntry), same transaction
    connection.execute(
        text(
            "INSERT INTO audit_log (actor, role, channel, action, target_table, target_id, "
            "old_value, new_value, note) VALUES (:actor, :role, :channel, 'correct_label', "
            "'articles', :a, CAST(:old AS jsonb), CAST(:new AS jsonb), :note)"
        ),
        {
            "actor": (actor or reviewer).strip() or reviewer,
            "role": role,
            "channel": channel,
            "a": article_id,
            "note": note,
            "old": json.dumps({field: old}, ensure_ascii=False),
            "new": json.dumps(
                {field: label, "reviewer": reviewer, "feedback_id": feedback_id}, ensure_ascii=False
            ),
        },
    )
    return feedback_id


def load_corrections(connection: Any) -> list[dict[str, Any]]:
    """The latest sentiment correction of each article, with the article's text.

    Returns dicts ``{"feedback_id", "article_id", "label", "title", "lead", "text"}``.
    """
    rows = connection.execute(
        text(
            "SELECT DISTINCT ON (f.article_id) f.id, f.article_id, f.new_label, a.title, a.lead, a.text "
            "FROM label_feedback f JOIN articles a ON a.id = f.article_id "
            "WHERE f.field = 'sentiment' ORDER BY f.article_id, f.created_at DESC, f.id DESC"
        )
    ).all()
    return [
        {
            "feedback_id": r[0],
            "article_id": r[1],
            "label": r[2],
            "title": r[3] or "",
            "lead": r[4] or "",
            "text": r[5] or "",
        }
        for r in rows
    ]


def mark_used(connection: Any, feedback_ids: list[int], model_version: str) -> None:
    """Record which model version was trained with these corrections."""
    if feedback_ids:
        connection.execute(
            text("UPDATE label_feedback SET used_in_model_version = :v WHERE id = ANY(:ids)"),
            {"v": model_version, "ids": list(feedback_ids)},
        )
