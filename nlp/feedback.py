"""Label corrections by media staff (table ``label_feedback``) and reading them for retraining.

:func:`record_correction` is the one owner of the operation, for news articles and citizens'
posts alike: the API (Features Part 4 ``PATCH`` on ``/collections/articles/items/{id}`` and
``/collections/posts/items/{id}``, ``POST /digest/feedback`` with ``article_id`` or
``post_id``) only authenticates and calls it, and ``ioc nlp correct ITEM LABEL`` calls it
from the command line (an item named ``article:ID``, ``post:ID`` or by its URL:
:func:`resolve_item`). It validates the label, reviewer and note, stores the correction and
writes the audit row (``audit_log``, migration 0006: who, role, channel, old and new label) in
the same transaction.

:func:`load_corrections` gives the latest sentiment correction of every article and post with
its genre, so ``ioc nlp retrain`` trains each genre's head with that genre's corrections.

Takes a SQLAlchemy Connection passed in; plain SQL text against the tables of
``gis/db/models.py`` (nlp does not import gis). The caller owns the transaction.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import text

from nlp.errors import ArticleNotFoundError, InputError, PostNotFoundError
from nlp.sentiment import LABELS, TOPICS

REVIEWER_MAX = 200
NOTE_MAX = 2000
GENRES = ("article", "post")

# genre -> (table, its label_feedback column, its scores table, the error when it is missing)
_ITEMS: dict[str, tuple[str, str, str, type[InputError]]] = {
    "article": ("articles", "article_id", "article_scores", ArticleNotFoundError),
    "post": ("posts", "post_id", "post_scores", PostNotFoundError),
}
_REF_RE = re.compile(r"^\s*(article|articles|post|posts)\s*[:/#]\s*(\d{1,19})\s*$", re.I)


def resolve_item(connection: Any, ref: Any) -> tuple[str, int]:
    """(genre, id) of the article or post a person names.

    ``ref`` is ``article:ID`` or ``post:ID`` (the ``id`` the ``articles`` and ``posts``
    collections publish; ``posts/ID`` is accepted too), or the item's URL as published (an
    article's or post's ``url`` or canonical URL).

    Raises
    ------
    ArticleNotFoundError, PostNotFoundError
        No such article or post.
    InputError
        ``ref`` names nothing, or a URL that both an article and a post carry.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InputError("name the item: article:ID, post:ID or its URL")
    m = _REF_RE.match(ref)
    if m:
        genre = "post" if m.group(1).lower().startswith("post") else "article"
        item_id = int(m.group(2))
        table, _, _, error = _ITEMS[genre]
        if (
            not 0 < item_id < 2**63
            or connection.execute(
                text(f"SELECT 1 FROM {table} WHERE id = :i"), {"i": item_id}
            ).first()
            is None
        ):
            raise error(f"{genre} {item_id} does not exist")
        return genre, item_id
    url = ref.strip()
    if not re.match(r"^https?://", url, re.I):
        raise InputError(
            f"{url[:60]!r} names no item: use article:ID, post:ID or the item's http(s) URL"
        )
    found: list[tuple[str, int]] = []
    for genre, (table, _, _, _) in _ITEMS.items():
        row = connection.execute(
            text(
                f"SELECT id FROM {table} WHERE url = :u OR canonical_url = :u "
                "ORDER BY (duplicate_of IS NULL) DESC, id LIMIT 1"
            ),
            {"u": url},
        ).first()
        if row is not None:
            found.append((genre, int(row[0])))
    if not found:
        raise InputError(f"no article or post has the URL {url[:120]}")
    if len(found) > 1:
        raise InputError(
            f"the URL {url[:120]} is both article:{found[0][1]} and post:{found[1][1]}: "
            "name the item by its id"
        )
    return found[0]


def record_correction(
    connection: Any,
    item_id: int,
    label: str,
    reviewer: str,
    note: str | None = None,
    field: str = "sentiment",
    *,
    genre: str = "article",
    actor: str | None = None,
    role: str | None = None,
    channel: str = "api",
) -> int:
    """Store one correction of an article's or a post's label and return its id.

    Parameters
    ----------
    connection : sqlalchemy.engine.Connection
    item_id : int
        ``articles.id`` (``genre="article"``) or ``posts.id`` (``genre="post"``).
    label : str
        New label: negative, neutral or positive (``field="sentiment"``) or one of the 12
        topics (``field="topic"``).
    reviewer : str
        Who corrected it (from the API's authentication).
    note : str, optional
        At most 2,000 characters.
    genre : str
        ``article`` (a news article) or ``post`` (a citizen's post or comment).
    actor, role, channel : str, optional
        Who makes the change for the audit trail: the API token's name and the role it was
        authorised with, ``channel`` "api" or "cli". ``actor`` defaults to ``reviewer``.

    Raises
    ------
    ArticleNotFoundError, PostNotFoundError
        No such article or post (both :class:`InputError`).
    InputError
        Unknown label, field or genre, empty reviewer.
    """
    if genre not in _ITEMS:
        raise InputError(f"genre {str(genre)[:40]!r} cannot be corrected: use 'article' or 'post'")
    table, column, scores_table, not_found = _ITEMS[genre]
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
    if isinstance(item_id, bool) or not isinstance(item_id, int) or not 0 < item_id < 2**63:
        raise not_found(f"{genre} {str(item_id)[:40]} does not exist")
    exists = connection.execute(
        text(f"SELECT 1 FROM {table} WHERE id = :a"), {"a": item_id}
    ).first()
    if exists is None:
        raise not_found(f"{genre} {item_id} does not exist")
    score_column = "label" if field == "sentiment" else "topic"
    # The label the reviewer saw: the last correction if there is one, else the model's.
    old = connection.execute(
        text(
            f"SELECT new_label FROM label_feedback WHERE {column} = :a AND field = :f "
            "ORDER BY created_at DESC, id DESC LIMIT 1"
        ),
        {"a": item_id, "f": field},
    ).scalar()
    if old is None:
        old = connection.execute(
            text(
                f"SELECT {score_column} FROM {scores_table} WHERE {column} = :a "
                "ORDER BY scored_at DESC, id DESC LIMIT 1"
            ),
            {"a": item_id},
        ).scalar()
    reviewer = reviewer.strip()
    feedback_id = int(
        connection.execute(
            text(
                f"INSERT INTO label_feedback ({column}, field, old_label, new_label, reviewer, note) "
                "VALUES (:a, :f, :o, :n, :r, :note) RETURNING id"
            ),
            {"a": item_id, "f": field, "o": old, "n": label, "r": reviewer, "note": note},
        ).scalar_one()
    )
    # the audit row (gis/db/models.py AuditEntry), same transaction
    connection.execute(
        text(
            "INSERT INTO audit_log (actor, role, channel, action, target_table, target_id, "
            "old_value, new_value, note) VALUES (:actor, :role, :channel, 'correct_label', "
            ":table, :a, CAST(:old AS jsonb), CAST(:new AS jsonb), :note)"
        ),
        {
            "actor": (actor or reviewer).strip() or reviewer,
            "role": role,
            "channel": channel,
            "table": table,
            "a": item_id,
            "note": note,
            "old": json.dumps({field: old}, ensure_ascii=False),
            "new": json.dumps(
                {field: label, "reviewer": reviewer, "feedback_id": feedback_id}, ensure_ascii=False
            ),
        },
    )
    return feedback_id


def load_corrections(connection: Any, genre: str | None = None) -> list[dict[str, Any]]:
    """The latest sentiment correction of each article and each post, with its text and genre.

    Returns dicts ``{"feedback_id", "genre", "article_id" | "post_id", "label", "title",
    "lead", "text"}`` (a post has no title or lead: ``""``); ``genre`` ("article" or "post")
    keeps only that genre's corrections.
    """
    if genre is not None and genre not in GENRES:
        raise InputError(f"genre {str(genre)[:40]!r} is not article or post")
    out: list[dict[str, Any]] = []
    if genre in (None, "article"):
        rows = connection.execute(
            text(
                "SELECT DISTINCT ON (f.article_id) f.id, f.article_id, f.new_label, a.title, a.lead, a.text "
                "FROM label_feedback f JOIN articles a ON a.id = f.article_id "
                "WHERE f.field = 'sentiment' ORDER BY f.article_id, f.created_at DESC, f.id DESC"
            )
        ).all()
        out += [
            {
                "feedback_id": r[0],
                "genre": "article",
                "article_id": r[1],
                "label": r[2],
                "title": r[3] or "",
                "lead": r[4] or "",
                "text": r[5] or "",
            }
            for r in rows
        ]
    if genre in (None, "post"):
        rows = connection.execute(
            text(
                "SELECT DISTINCT ON (f.post_id) f.id, f.post_id, f.new_label, p.text "
                "FROM label_feedback f JOIN posts p ON p.id = f.post_id "
                "WHERE f.field = 'sentiment' ORDER BY f.post_id, f.created_at DESC, f.id DESC"
            )
        ).all()
        out += [
            {
                "feedback_id": r[0],
                "genre": "post",
                "post_id": r[1],
                "label": r[2],
                "title": "",
                "lead": "",
                "text": r[3] or "",
            }
            for r in rows
        ]
    return out


def mark_used(connection: Any, feedback_ids: list[int], model_version: str) -> None:
    """Record which model version was trained with these corrections."""
    if feedback_ids:
        connection.execute(
            text("UPDATE label_feedback SET used_in_model_version = :v WHERE id = ANY(:ids)"),
            {"v": model_version, "ids": list(feedback_ids)},
        )
