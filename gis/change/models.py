"""Change detectors: a per-pixel change probability from two normalised images.

* ``cnn`` (default): an early-fusion U-Net trained on OSCD with PyTorch, exported to ONNX and
  run with onnxruntime (``gis/models/change_cnn_v3.onnx``; see ``gis/models/MODEL_CARD.md``).
* ``gbm``: a scikit-learn histogram gradient-boosting pixel classifier on spectral features
  (``gis/models/change_gbm_v1.joblib``), the supervised fallback.
* ``cva``: unsupervised change vector analysis: the magnitude of the difference of the
  normalised images, thresholded automatically per scene pair: at four times the scene's
  median magnitude (its no-change noise level), or with Otsu's method.

All detectors take normalised arrays (bands, h, w) in :data:`gis.imagery.MODEL_BANDS` order
and return a float32 probability (h, w); 0.5 is the decision threshold.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Protocol

import numpy as np

from gis.change.features import (
    change_magnitude,
    model_input,
    noise_level,
    pixel_features,
    scale_for_noise,
)
from gis.errors import ConfigurationError

MODEL_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODELS = {"cnn": "change_cnn_v3.onnx", "gbm": "change_gbm_v1.joblib"}
METHODS = ("cnn", "gbm", "cva")


class Detector(Protocol):
    name: str
    version: str
    halo: int

    def probability(self, before: np.ndarray, after: np.ndarray) -> np.ndarray: ...


@functools.lru_cache(maxsize=8)
def _onnx_session(path: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


class CnnDetector:
    """The ONNX U-Net. Input padded (reflect) to a multiple of 8.

    The model's metadata (written by ``scripts/train_change_model.py``) says what it takes:
    ``diff_only`` "true" = the difference channels only, not the two images; ``diff_norm``
    "scene-median" = differences scaled by the scene pair's no-change level, which
    :meth:`fit` measures on the whole pair before any tile is scored.
    """

    name = "cnn"
    halo = 32

    def __init__(
        self, path: Path, threads: int = 2, tta: bool = False, diff_scale: float | None = None
    ) -> None:
        self.path = Path(path)
        self.tta = tta
        if not self.path.exists():
            raise ConfigurationError(f"{self.path}: change model file not found.")
        self.threads = threads
        meta = _onnx_session(str(self.path), threads).get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)
        self.bands = tuple(json.loads(meta.get("bands", "[]")))
        self.version = self.path.stem
        self.diff_only = meta.get("diff_only", "false") == "true"
        diff_norm = meta.get("diff_norm", "none")
        if diff_norm not in ("none", "scene-median"):
            raise ConfigurationError(
                f"{self.path}: the model wants input normalisation '{diff_norm}', which this "
                "version of the product does not know."
            )
        self.needs_scene_fit = diff_norm == "scene-median"
        self.diff_scale = diff_scale

    def __getstate__(self):  # picklable for Dask: the session is re-created per process
        return {
            "path": self.path,
            "threads": self.threads,
            "tta": self.tta,
            "diff_scale": self.diff_scale,
        }

    def __setstate__(self, state) -> None:
        self.__init__(
            state["path"], state["threads"], state.get("tta", False), state.get("diff_scale")
        )

    def fit(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> float:
        """Measure the pair's no-change level (a decimated copy of the whole scene pair)."""
        self.diff_scale = scale_for_noise(noise_level(change_magnitude(before, after)[valid]))
        return self.diff_scale

    def probability(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        if not self.tta:
            return self._probability(before, after)
        # Test-time augmentation: the mean over the four flips (the model was trained on
        # flipped and rotated patches, so each view is an equally valid prediction).
        total = np.zeros(before.shape[1:], dtype=np.float32)
        for flip in ((), (1,), (2,), (1, 2)):
            b = np.flip(before, flip) if flip else before
            a = np.flip(after, flip) if flip else after
            p = self._probability(np.ascontiguousarray(b), np.ascontiguousarray(a))
            total += np.flip(p, tuple(f - 1 for f in flip)) if flip else p
        return total / 4

    def _probability(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        if self.needs_scene_fit and self.diff_scale is None:
            raise ConfigurationError(f"{self.path}: scene scale not set: call fit() first.")
        x = model_input(before, after, self.diff_scale or 1.0, diff_only=self.diff_only)
        _, h, w = x.shape
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            mode = "reflect" if h > ph and w > pw else "edge"
            x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode=mode)
        logit = _onnx_session(str(self.path), self.threads).run(None, {"x": x[None]})[0][0, 0]
        logit = logit[:h, :w]
        return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


class GbmDetector:
    """scikit-learn gradient boosting on per-pixel spectral features."""

    name = "gbm"
    halo = 4

    def __init__(self, path: Path) -> None:
        import joblib

        self.path = Path(path)
        if not self.path.exists():
            raise ConfigurationError(f"{self.path}: gradient-boosting model file not found.")
        self.model = joblib.load(self.path)
        self.version = self.path.stem

    def probability(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        feats = pixel_features(before, after)
        p = self.model.predict_proba(feats)[:, 1]
        return p.reshape(before.shape[1:]).astype(np.float32)


CVA_RULES = ("noise", "otsu")


class CvaDetector:
    """Change vector analysis with an automatic threshold set per scene pair.

    ``rule="noise"`` (default): change where the magnitude exceeds ``NOISE_RATIO`` times the
    scene's median magnitude (and Otsu's threshold, when that is higher). Change covers a small
    share of a scene, so the median is the no-change level of that pair (season, haze,
    registration), and the threshold follows it; a pair without change gets almost nothing.
    Either rule's threshold is at least :attr:`MIN_THRESHOLD`, so identical images (or images
    differing by a constant) yield no change.
    ``rule="otsu"``: Otsu's threshold alone. It assumes two classes of comparable size, so with
    rare change it cuts into the no-change mode, and it always splits a pair in two, changed or
    not (OSCD leave-one-city-out pooled F1 0.145 for Otsu, 0.227 for the noise rule: see
    gis/models/MODEL_CARD.md).
    """

    name = "cva"
    halo = 2
    needs_scene_fit = True
    NOISE_RATIO = 4.0  # OSCD pixel F1 0.215–0.223 for ratios 3.5–5: a plateau, not a tuned peak
    #: The threshold never goes below this magnitude (normalised units: a change vector one
    #: scene standard deviation long). Without it a pair with no change at all (the same image
    #: twice, or one shifted by a constant, which the per-image normalisation removes) has a
    #: median magnitude of 0, a threshold of 0 and every pixel "changed"; a nearly clean pair
    #: would have its noise read as change. OSCD's pairs have noise levels of 0.75–1.93, so
    #: their thresholds (≥ 3) are untouched by it.
    MIN_THRESHOLD = 1.0

    def __init__(self, threshold: float | None = None, rule: str = "noise") -> None:
        if rule not in CVA_RULES:
            raise ConfigurationError(
                f"Unknown CVA threshold rule '{rule}' (choose from {', '.join(CVA_RULES)})."
            )
        self.threshold = threshold
        self.rule = rule
        self.version = "cva-noise4-v3" if rule == "noise" else "cva-otsu-v2"

    def fit(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> float:
        """Set the threshold from (a decimated copy of) the whole scene pair."""
        mag = change_magnitude(before, after)[valid]
        if self.rule == "otsu":
            threshold = otsu_threshold(mag)
        else:
            # above the noise, and above Otsu's split when change is frequent enough to form
            # a mode of its own (then Otsu's threshold is the higher one)
            noise = self.NOISE_RATIO * noise_level(mag)
            threshold = max(noise, otsu_threshold(mag))
        self.threshold = max(threshold, self.MIN_THRESHOLD)
        return self.threshold

    def probability(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            raise ConfigurationError("CVA threshold not set: call fit() on the scene first.")
        mag = change_magnitude(before, after)
        # A logistic ramp through 0.5 at the threshold, so all detectors share one cut-off.
        scale = max(self.threshold * 0.1, 1e-6)
        return (1.0 / (1.0 + np.exp(-(mag - self.threshold) / scale))).astype(np.float32)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D sample (between-class variance maximised).

    >>> import numpy as np
    >>> v = np.concatenate([np.zeros(100), np.ones(100) * 10])
    >>> 0 < otsu_threshold(v) < 10
    True
    """
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0
    hi = float(np.percentile(values, 99.9))
    lo = float(values.min())
    if hi <= lo:
        return hi
    hist, edges = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mu0 = m0 / w0
        mu1 = (mt - m0) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    between = np.nan_to_num(between)
    return float(centres[int(np.argmax(between))])


def load_detector(
    method: str,
    model_dir: Path | None = None,
    model_path: Path | None = None,
    threads: int = 2,
    tta: bool = False,
    cva_rule: str = "noise",
) -> Detector:
    """The detector for ``method`` ('cnn', 'gbm' or 'cva').

    Raises
    ------
    ConfigurationError
        Unknown method or missing model file.
    """
    if method not in METHODS:
        raise ConfigurationError(
            f"Unknown change detection method '{method}' (choose from {', '.join(METHODS)})."
        )
    if method == "cva":
        return CvaDetector(rule=cva_rule)
    path = model_path or Path(model_dir or MODEL_DIR) / DEFAULT_MODELS[method]
    if method == "cnn":
        return CnnDetector(path, threads=threads, tta=tta)
    return GbmDetector(path)
