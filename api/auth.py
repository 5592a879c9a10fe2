"""API tokens with roles, configured by the operator.

Tokens come from ``IOC_API_TOKENS`` (comma-separated entries) and ``IOC_API_TOKENS_FILE`` (one
entry per line, ``#`` comments). An entry is ``name:role[+role...]:token``::

    IOC_API_TOKENS="tran-b:officer:<long random>,pham-d:media:<long random>,ops:admin:<...>"

Roles (:data:`gis.db.models.ROLES`): ``officer`` reviews parcel alerts and runs the land
processes, ``media`` corrects sentiment labels and runs the NLP processes (sentiment scoring,
daily digest), ``admin`` may do everything. The old forms ``name:token`` and a bare ``token``
still work and mean ``admin``; each such entry logs a deprecation warning at start-up.

A request presents a token as ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``.
No token (or an unknown one) answers 401; a valid token without the role an operation needs
answers 403 naming the role. No tokens configured means no write is ever accepted.

>>> store = TokenStore.from_settings(["tran-b:officer:aaaaaaaaaaaaaaaa"], None)
>>> who = store.authenticate({"authorization": "Bearer aaaaaaaaaaaaaaaa"})
>>> who.name, who.role_label, who.may("officer"), who.may("media")
('tran-b', 'officer', True, False)
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from api.errors import AuthenticationError, ConfigError, ForbiddenError
from gis.db.models import ROLES

LOGGER = logging.getLogger(__name__)

ADMIN = "admin"
#: the role that may correct an article's sentiment label (``POST /digest/feedback`` too);
#: collections name it as their ``write_role`` (api.collections)
LABEL_CORRECTION_ROLE = "media"
#: the role that may review a parcel alert
ALERT_REVIEW_ROLE = "officer"
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Principal:
    """Who presented a token: its name and roles."""

    name: str
    roles: frozenset[str]

    def may(self, role: str) -> bool:
        """Whether the token may act with ``role`` (``admin`` may act with any)."""
        return ADMIN in self.roles or role in self.roles

    @property
    def role_label(self) -> str:
        return "+".join(sorted(self.roles))

    def acting_role(self, role: str) -> str:
        """The role recorded in the audit trail for an operation that needs ``role``."""
        return role if role in self.roles else ADMIN

    def require(self, role: str, what: str) -> str:
        """``role`` (as recorded) if the token may act with it, else :class:`ForbiddenError`."""
        if role not in ROLES:
            raise ConfigError(f"Unknown role {role!r} required for {what}.")
        if not self.may(role):
            raise ForbiddenError(
                f"{what} needs a token with the '{role}' role (or '{ADMIN}'); the token "
                f"'{self.name}' has the role '{self.role_label}'."
            )
        return self.acting_role(role)


def parse_entry(entry: str, position: int) -> tuple[str, Principal, bool]:
    """``(token, principal, old_style)`` of one configured entry.

    >>> token, who, old = parse_entry("pham-d:media+officer:bbbbbbbbbbbbbbbb", 1)
    >>> who.name, sorted(who.roles), old
    ('pham-d', ['media', 'officer'], False)
    >>> parse_entry("ops:cccccccccccccccc", 2)[1:]
    (Principal(name='ops', roles=frozenset({'admin'})), True)
    """
    parts = entry.strip().split(":", 2)
    if len(parts) == 3:
        name, role_text, token = (p.strip() for p in parts)
        roles = [r.strip() for r in role_text.split("+")]
        unknown = [r for r in roles if r not in ROLES]
        if unknown or not role_text:
            raise ConfigError(
                f"API token entry {position} ('{name}') names unknown role(s) "
                f"{', '.join(repr(r) for r in unknown) or repr(role_text)}; roles are "
                f"{', '.join(ROLES)} (write name:role[+role]:token)."
            )
        old_style = False
        principal_roles = frozenset(roles)
    elif len(parts) == 2:
        name, token = parts[0].strip(), parts[1].strip()
        old_style, principal_roles = True, frozenset({ADMIN})
    else:
        name, token = f"token-{position}", parts[0].strip()
        old_style, principal_roles = True, frozenset({ADMIN})
    if not name:
        raise ConfigError(f"API token entry {position} has an empty name (write name:role:token).")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"API token '{name}' is shorter than {MIN_TOKEN_LENGTH} characters; use a long random token."
        )
    return token, Principal(name, principal_roles), old_style


@dataclass(frozen=True)
class TokenStore:
    tokens: dict[str, Principal]  # token -> who

    @classmethod
    def from_settings(cls, tokens: list[str], tokens_file: Path | None) -> TokenStore:
        entries = list(tokens)
        if tokens_file is not None:
            try:
                lines = Path(tokens_file).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(
                    f"Cannot read the tokens file {tokens_file}: {exc.strerror}."
                ) from exc
            entries += [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        out: dict[str, Principal] = {}
        for i, entry in enumerate(entries, start=1):
            token, principal, old_style = parse_entry(entry, i)
            if token in out:
                raise ConfigError(
                    f"API tokens '{out[token].name}' and '{principal.name}' are the same token; "
                    "give each its own."
                )
            if old_style:
                LOGGER.warning(
                    "API token '%s' has no role (old 'name:token' form): treated as admin. "
                    "Write 'name:role:token' with a role among %s.",
                    principal.name,
                    ", ".join(ROLES),
                )
            out[token] = principal
        return cls(out)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Who presented the token in ``headers``; :class:`AuthenticationError` if none is valid."""
        presented = None
        auth = headers.get("authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                presented = value.strip()
        if presented is None and headers.get("x-api-key"):
            presented = headers.get("x-api-key").strip()
        if not self.tokens:
            raise AuthenticationError(
                "Writes are disabled: no API tokens are configured (IOC_API_TOKENS)."
            )
        if presented is None:
            raise AuthenticationError(
                "This request needs an API token: send 'Authorization: Bearer <token>'."
            )
        found = None
        for token, principal in self.tokens.items():  # compare with every token: constant time
            if hmac.compare_digest(token.encode(), presented.encode()):
                found = principal
        if found is None:
            raise AuthenticationError("The API token is not valid.")
        return found

    def identify(self, headers: Mapping[str, str]) -> str:
        """The name of the token presented in ``headers`` (see :meth:`authenticate`)."""
        return self.authenticate(headers).name

    def require(self, headers: Mapping[str, str], role: str, what: str) -> Principal:
        """The token's principal if it may act with ``role``: 401 without a valid token, 403
        with a token lacking the role."""
        principal = self.authenticate(headers)
        principal.require(role, what)
        return principal
