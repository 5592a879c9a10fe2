"""Settings of the API, read at the edges (CLI, app start) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ApiSettings(BaseSettings):
    """How the OGC API is served (env prefix ``IOC_API_``).

    Tokens: ``IOC_API_TOKENS`` is a comma-separated list of ``name:role[+role]:token`` (roles
    officer, media, admin; the old ``name:token`` and bare tokens mean admin, see
    :mod:`api.auth`); ``IOC_API_TOKENS_FILE`` names a file with one entry per line. Every write
    needs one; reads need one too when ``IOC_API_PROTECT_READS=true``.
    """

    model_config = SettingsConfigDict(env_prefix="IOC_API_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = Field(default=1, ge=1, le=64)
    base_url: str | None = Field(
        default=None, description="Public URL of the API; unset = http://host:port."
    )
    tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    tokens_file: Path | None = None
    protect_reads: bool = False
    default_items: int = Field(default=100, ge=1)
    max_items: int = Field(default=10000, ge=1)
    exact_count_limit: int = Field(
        default=200_000,
        ge=0,
        description="Tables estimated larger than this report pg_class.reltuples as "
        "numberMatched when unfiltered; filtered counts stop at this many rows.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body accepted (bytes, counted as it streams in); larger "
        "bodies are answered 413.",
    )
    max_filter_nodes: int = Field(
        default=1000,
        ge=10,
        description="Largest CQL2 filter accepted, in syntax-tree nodes (predicates, logical "
        "operators, properties and values); larger filters are answered 400.",
    )
    max_filter_depth: int = Field(
        default=30,
        ge=2,
        description="Deepest nesting of a CQL2 filter (a chain of the same AND/OR is one level).",
    )
    pool_size: int = Field(default=8, ge=1)
    statement_timeout_ms: int = Field(default=30_000, ge=100)
    connect_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=120,
        description="Seconds a request waits for a database connection before answering 503 "
        "(short, so an outage is answered at once instead of hanging clients).",
    )
    coverage_runs: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Stored scenes published as OGC API - Coverages collections: those of the "
        "latest this many detection runs, plus those of runs with alerts still to review; "
        "every stored scene keeps its map tiles at /imagery/{scene}/tiles.",
    )
    config_file: Path | None = Field(
        default=None, description="Where `ioc demo` writes the pygeoapi YAML; unset = state dir."
    )
    languages: list[str] = Field(default_factory=lambda: ["vi-VN", "en-US"])
    cors: bool = True
    access_log: bool = False
    process_data_roots: list[Path] = Field(
        default_factory=lambda: [Path.cwd() / "data", Path.cwd().parent / "shared" / "data"],
        description="Folders the land-change-detection process may read images from.",
    )
    pretty_print: bool = False
    local_assets: bool = Field(
        default=True,
        description="Serve the HTML pages' Leaflet, Bootstrap and Swagger UI from /vendor "
        "(Python packages) instead of public CDNs (api/assets.py).",
    )

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")
