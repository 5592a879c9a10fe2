"""API keys / bearer tokens configured by the operator.

Tokens come from ``IOC_API_TOKENS`` (comma-separated ``name:token`` or bare tokens) and from
``IOC_API_TOKENS_FILE`` (one ``name:token`` per line, ``#`` comments). A request presents one
as ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``. No tokens configured means no
write is ever accepted.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from api.errors import AuthenticationError, ConfigError


@dataclass(frozen=True)
class TokenStore:
    tokens: dict[str, str]  # token -> name

    @classmethod
    def from_settings(cls, tokens: list[str], tokens_file: Path | None) -> TokenStore:
        entries = list(tokens)
        if tokens_file is not None:
            try:
                lines = Path(tokens_file).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"Cannot read the tokens file {tokens_file}: {exc.strerror}.") from exc
            entries += [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
        out: dict[str, str] = {}
        for i, entry in enumerate(entries, start=1):
            name, sep, token = entry.partition(":")
            if not sep:
                name, token = f"token-{i}", entry
            token = token.strip()
            if len(token) < 16:
                raise ConfigError(
                    f"API token '{name.strip()}' is shorter than 16 characters; use a long random token."
                )
            out[token] = name.strip()
        return cls(out)

    def identify(self, headers) -> str:
        """The name of the token presented in ``headers``; AuthenticationError if none is valid."""
        presented = None
        auth = headers.get("authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                presented = value.strip()
        if presented is None and headers.get("x-api-key"):
            presented = headers.get("x-api-key").strip()
        if not self.tokens:
            raise AuthenticationError("Writes are disabled: no API tokens are configured (IOC_API_TOKENS).")
        if presented is None:
            raise AuthenticationError("This request needs an API token: send 'Authorization: Bearer <token>'.")
        for token, name in self.tokens.items():
            if hmac.compare_digest(token.encode(), presented.encode()):
                return name
        raise AuthenticationError("The API token is not valid.")
