"""The audit trail of reviews and corrections (table ``audit_log``, migration 0006).

Every change a person makes to a published record (a parcel alert's review, an article's
sentiment label) writes one row here in the same transaction as the change: who did it (the API
token's name, or the system user at the command line), with which role, through which channel,
when, the action, the target row, its old and new values and the note. Rows are append-only
(a trigger refuses UPDATE and DELETE).

>>> Actor("officer-1", "officer").describe()
'officer-1 (officer, api)'
>>> Actor("", None, "cli")
Traceback (most recent call last):
...
gis.errors.InvalidValueError: The audit actor (who made the change) is empty.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from gis.db.models import AUDIT_CHANNELS, ROLES
from gis.errors import InvalidValueError


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a name, the role it was authorised with (None at the command line,
    where the database credentials are the authority) and the channel (``api`` or ``cli``)."""

    name: str
    role: str | None = None
    channel: str = "api"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidValueError("The audit actor (who made the change) is empty.")
        if self.role is not None and self.role not in ROLES:
            raise InvalidValueError(f"Unknown role {self.role!r}; roles are {', '.join(ROLES)}.")
        if self.channel not in AUDIT_CHANNELS:
            raise InvalidValueError(
                f"Unknown channel {self.channel!r}; use {', '.join(AUDIT_CHANNELS)}."
            )

    def describe(self) -> str:
        return f"{self.name} ({self.role or 'no role'}, {self.channel})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def record(
    connection: Connection,
    actor: Actor,
    action: str,
    target_table: str,
    target_id: int,
    old_value: dict[str, Any] | None,
    new_value: dict[str, Any] | None,
    note: str | None = None,
) -> int:
    """Append one audit row on ``connection`` (the caller's transaction) and return its id."""
    return int(
        connection.execute(
            text(
                "INSERT INTO audit_log (actor, role, channel, action, target_table, target_id, "
                "old_value, new_value, note) VALUES (:actor, :role, :channel, :action, :tt, :tid, "
                "CAST(:old AS jsonb), CAST(:new AS jsonb), :note) RETURNING id"
            ),
            {
                "actor": actor.name.strip(),
                "role": actor.role,
                "channel": actor.channel,
                "action": action,
                "tt": target_table,
                "tid": int(target_id),
                "old": None
                if old_value is None
                else json.dumps(_jsonable(old_value), ensure_ascii=False),
                "new": None
                if new_value is None
                else json.dumps(_jsonable(new_value), ensure_ascii=False),
                "note": note,
            },
        ).scalar_one()
    )


def history(connection: Connection, target_table: str, target_id: int) -> list[dict[str, Any]]:
    """The audit rows of one record, oldest first."""
    rows = (
        connection.execute(
            text(
                "SELECT id, occurred_at, actor, role, channel, action, target_table, target_id, "
                "old_value, new_value, note FROM audit_log WHERE target_table = :tt AND target_id = :tid "
                "ORDER BY occurred_at, id"
            ),
            {"tt": target_table, "tid": int(target_id)},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]
