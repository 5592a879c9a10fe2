"""Settings of the land-monitoring core, read at the edges (CLI, app start) and passed down.

Library functions never read the environment: they take these objects as arguments.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_state_dir() -> Path:
    return Path.cwd() / ".state"


class StateSettings(BaseSettings):
    """Where the project keeps its state: the database cluster, models, caches, jobs."""

    model_config = SettingsConfigDict(env_prefix="IOC_", env_file=".env", extra="ignore")

    state_dir: Path = Field(default_factory=_default_state_dir)


class DatabaseSettings(BaseSettings):
    """The PostGIS database: an external one (``IOC_DATABASE_URL``) or the embedded cluster."""

    model_config = SettingsConfigDict(env_prefix="IOC_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="libpq URI of an external PostGIS; unset = the embedded cluster.",
    )
    state_dir: Path = Field(default_factory=_default_state_dir)
    db_name: str = "ioc"
    db_user: str = "ioc"
    db_port: int | None = Field(
        default=None, description="Port of the embedded cluster; unset = a free port."
    )
    pg_bindir: Path | None = Field(
        default=None, description="Folder of the PostgreSQL server binaries; unset = found."
    )
    storage_srid: int = Field(
        default=5897,
        description="Projected CRS that parcels and land changes are stored in "
        "(VN-2000 / TM-3 zone 482 by default); fixed when the schema is created.",
    )


class LandSettings(BaseSettings):
    """Change detection and alert rules."""

    model_config = SettingsConfigDict(env_prefix="IOC_LAND_", env_file=".env", extra="ignore")

    rules_file: Path | None = None
    model_dir: Path | None = None
    detector: str = "cnn"
    tta: bool = False  # cnn test-time augmentation (four flips)
    dask_scheduler: str | None = None
