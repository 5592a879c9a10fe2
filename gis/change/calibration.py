"""Calibrated change confidence: what share of a change polygon is really change.

A detector's raw score of a polygon (the mean change probability of its pixels) orders
polygons, but 0.8 does not mean "80 % likely": the CNN's probabilities mean different things
in different scenes and CVA's logistic ramp saturates. A calibration maps the raw score to the
share of the polygon's pixels that a reference labelling calls change, fitted by isotonic
regression (monotone, non-decreasing; weights = polygon pixels) on OSCD polygons produced by the
product's own path (``benchmarks/land_oscd.py --calibration-out``), out of fold where the
detector was trained (leave-one-city-out) and reported with its out-of-fold Brier score.

The fitted map is stored next to the model as ``<model version>.calibration.json``
(``change_cnn_v3.calibration.json``, ``cva-noise4-v3.calibration.json``): the breakpoints of a
piecewise-linear non-decreasing function and its provenance (data, cities, command, date,
whether the scores were out of fold). Applying it needs numpy only; fitting needs scikit-learn.
A file made for another model version is refused (one sentence naming the file).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gis.errors import ConfigurationError

SUFFIX = ".calibration.json"
FORMAT = "ioc-change-calibration/1"


@dataclass
class Calibration:
    """A non-decreasing piecewise-linear map raw score → calibrated confidence (0–1)."""

    x: np.ndarray
    y: np.ndarray
    model_version: str
    provenance: dict = field(default_factory=dict)
    path: Path | None = None

    def apply(self, raw) -> np.ndarray:
        """Calibrated confidence of raw scores (clipped to the fitted range at both ends)."""
        return np.clip(np.interp(np.asarray(raw, dtype=float), self.x, self.y), 0.0, 1.0)

    def as_dict(self) -> dict:
        return {
            "format": FORMAT,
            "model_version": self.model_version,
            "x": [round(float(v), 6) for v in self.x],
            "y": [round(float(v), 6) for v in self.y],
            "provenance": self.provenance,
        }


def fit_isotonic(
    raw: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints (x, y) of the isotonic regression of ``target`` (0–1) on ``raw``.

    >>> x, y = fit_isotonic(np.array([0.6, 0.7, 0.9, 0.95]), np.array([0.1, 0.0, 0.5, 0.9]))
    >>> bool(np.all(np.diff(y) >= 0)), float(y[0]), float(y[-1])
    (True, 0.05, 0.9)
    """
    from sklearn.isotonic import IsotonicRegression

    raw = np.asarray(raw, dtype=float)
    target = np.asarray(target, dtype=float)
    if raw.size < 2:
        raise ValueError("at least two scored polygons are needed to fit a calibration.")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(raw, target, sample_weight=weight)
    return np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)


def brier(pred: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Weighted mean squared error between confidence and the polygon's true change share."""
    w = np.ones_like(pred, dtype=float) if weight is None else np.asarray(weight, float)
    return float(np.sum(w * (np.asarray(pred) - np.asarray(target)) ** 2) / max(w.sum(), 1e-12))


def calibration_path(model_dir: Path, model_version: str) -> Path:
    return Path(model_dir) / f"{model_version}{SUFFIX}"


def save_calibration(cal: Calibration, path: Path) -> Path:
    """Write the calibration JSON (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cal.as_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_calibration(path: Path, model_version: str | None = None) -> Calibration:
    """Read and check a calibration file.

    Raises
    ------
    ConfigurationError
        Not found, not JSON, not this format, breakpoints not non-decreasing in [0, 1], or
        made for another model version than ``model_version``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{path}: calibration file not found.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: not a JSON calibration file ({exc}).") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigurationError(f"{path}: not a change calibration file (format {FORMAT}).")
    try:
        x = np.asarray(data["x"], dtype=float)
        y = np.asarray(data["y"], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{path}: calibration breakpoints x/y missing or not numbers."
        ) from exc
    if (
        x.ndim != 1
        or x.shape != y.shape
        or x.size < 1
        or np.any(np.diff(x) < 0)
        or np.any(np.diff(y) < 0)
        or np.any((y < 0) | (y > 1))
    ):
        raise ConfigurationError(
            f"{path}: calibration breakpoints must be non-decreasing, with y in [0, 1]."
        )
    version = str(data.get("model_version", ""))
    if model_version is not None and version != model_version:
        raise ConfigurationError(
            f"{path}: calibration made for model '{version}', not '{model_version}'."
        )
    return Calibration(x, y, version, data.get("provenance", {}), path)


def find_calibration(
    model_version: str, model_path: Path | None, model_dir: Path
) -> Calibration | None:
    """The calibration shipped for a detector: ``<version>.calibration.json`` next to its
    model file (CNN, GBM) or in the model folder (CVA); None when there is none."""
    folder = Path(model_path).parent if model_path else Path(model_dir)
    path = calibration_path(folder, model_version)
    if not path.exists():
        return None
    return load_calibration(path, model_version)


def provenance(
    method: str, data: str, cities: list[str], out_of_fold: bool, command: str, **extra
) -> dict:
    return {
        "method": method,
        "data": data,
        "cities": cities,
        "out_of_fold": out_of_fold,
        "command": command,
        "fitted_at": dt.date.today().isoformat(),
        "target": "share of the polygon's pixels labelled change",
        **extra,
    }
