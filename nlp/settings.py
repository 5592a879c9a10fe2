"""Settings of the nlp package, read at the edges (CLI, app start) and passed down.

Environment prefix ``IOC_NLP_``; library functions never read the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DEFAULT_MODEL_DIR = PACKAGE_DIR / "models"
DEFAULT_GAZETTEER = REPO_ROOT / "data" / "admin" / "gazetteer_hanam.json"
DEFAULT_DATA_DIR = (REPO_ROOT / ".." / "shared" / "data").resolve()


class NLPSettings(BaseSettings):
    """Where the model, the gazetteer and the training data live."""

    model_config = SettingsConfigDict(env_prefix="IOC_NLP_", extra="ignore")

    model_path: Path | None = None  # None: the newest shipped model or the promoted registry one
    gazetteer_path: Path = DEFAULT_GAZETTEER
    data_dir: Path = DEFAULT_DATA_DIR  # the shared data folder (…/shared/data)
    registry_dir: Path | None = None  # None: <state_dir>/nlp-models
    max_chars: int = 200_000  # longer documents are truncated (and flagged) before scoring
