"""Settings of the imagery intake (read at the edges: ``ioc run``, the CLI; passed down).

``IOC_INTAKE_*`` for the intake itself, ``IOC_STAC_*`` for the catalogue. The STAC source is
off unless ``IOC_STAC_URL`` is set, and the watch folder is off unless ``IOC_INTAKE_WATCH_DIR``
is set: nothing is fetched from anywhere by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _stac(name: str, **kw):
    """A field read from ``IOC_STAC_<NAME>`` (also settable by its field name in Python)."""
    env = f"IOC_STAC_{name.upper()}"
    return Field(validation_alias=AliasChoices(f"stac_{name}", env), **kw)


class IntakeSettings(BaseSettings):
    """Where new scenes come from, what is kept, how pairs are chosen for detection."""

    model_config = SettingsConfigDict(
        env_prefix="IOC_INTAKE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # --- STAC catalogue (IOC_STAC_*) ---
    stac_url: str | None = _stac(
        "url",
        default=None,
        description="Root of a STAC API (…/ with /search); unset = the STAC source is off.",
    )
    stac_collection: str = _stac(
        "collection", default="sentinel-2-l2a", description="Collection id to search."
    )
    stac_max_cloud: float = _stac(
        "max_cloud",
        default=40.0,
        ge=0,
        le=100,
        description="Catalogue cloud-cover limit, eo:cloud_cover in percent (whole tile).",
    )
    stac_lookback_days: int = _stac(
        "lookback_days",
        default=400,
        ge=1,
        description="Search items acquired in the last N days (400: a year back and a season).",
    )
    stac_max_new: int = _stac(
        "max_new",
        default=6,
        ge=1,
        description="At most this many new items are read per poll (newest first).",
    )
    stac_timeout_s: float = _stac(
        "timeout_s", default=30.0, gt=0, description="HTTP timeout of one request."
    )
    stac_retries: int = _stac(
        "retries",
        default=3,
        ge=0,
        description="Retries of a request answered 429/5xx or timed out, with back-off.",
    )
    stac_backoff_s: float = _stac(
        "backoff_s",
        default=1.0,
        ge=0,
        description="Back-off factor: waits of backoff, 2×backoff, 4×backoff ... seconds.",
    )
    stac_headers: dict[str, str] = _stac(
        "headers",
        default_factory=dict,
        description="Extra HTTP headers for the catalogue and assets (JSON), e.g. a token.",
    )

    # --- intake (IOC_INTAKE_*) ---
    dir: Path | None = Field(
        default=None,
        description="Where scenes read from the catalogue are written (a band folder each); "
        "unset = <IOC_STATE_DIR>/imagery.",
    )
    watch_dir: Path | None = Field(
        default=None,
        description="Folder where scenes are delivered by hand; unset = no watch folder.",
    )
    watch_settle_s: float = Field(
        default=300.0,
        ge=0,
        description="A delivery whose newest file is older than this is taken at first sight; "
        "a newer one must be unchanged (sizes, mtimes) between two polls.",
    )
    province_code: str | None = Field(
        default=None,
        description="Area = the current units of this province; unset = every current unit.",
    )
    bbox: Annotated[tuple[float, float, float, float] | None, NoDecode] = Field(
        default=None,
        description="Area as west,south,east,north in degrees, instead of the admin units.",
    )
    min_usable_share: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="A scene with a smaller share of usable (not cloud/shadow/no-data per SCL) "
        "pixels over the area is rejected.",
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        description="A scene failing with transient errors this many times is rejected.",
    )
    retry_after_s: float = Field(
        default=600.0,
        ge=0,
        description="First wait before a failed scene is tried again (doubles per attempt).",
    )
    detect: bool = Field(default=True, description="Run change detection on new pairs.")
    season_window_days: int = Field(
        default=45,
        ge=1,
        le=183,
        description="Two scenes are of the same season when their days of the year differ "
        "by at most this.",
    )
    min_gap_days: int = Field(
        default=30,
        ge=0,
        description="A pair's BEFORE is at least this many days older than its AFTER.",
    )
    min_overlap: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the smaller footprint two scenes must have in common to pair.",
    )
    max_detections: int = Field(
        default=2, ge=0, description="At most this many detection runs per poll."
    )

    @field_validator("bbox", mode="before")
    @classmethod
    def _parse_bbox(cls, value):
        if isinstance(value, str):
            parts = [p for p in value.replace(";", ",").split(",") if p.strip()]
            if len(parts) != 4:
                raise ValueError("IOC_INTAKE_BBOX must be west,south,east,north in degrees")
            value = tuple(float(p) for p in parts)
        if value is not None:
            w, s, e, n = value
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise ValueError(f"bbox {value} is not west<east, south<north in degrees")
        return value

    @property
    def stac_enabled(self) -> bool:
        return bool(self.stac_url)

    def scene_dir(self, state_dir: Path) -> Path:
        return self.dir or state_dir / "imagery"
