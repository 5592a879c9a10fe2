"""Model inputs and per-pixel features shared by training and inference (numpy only)."""

from __future__ import annotations

import numpy as np

#: Median over OSCD's cities of the scene-median change magnitude |after − before| of the
#: normalised images (0.75–1.93 per city): the level :func:`scene_diff_scale` rescales to.
TYPICAL_SCENE_MAGNITUDE = 1.2


def scene_diff_scale(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> float:
    """Factor that brings the scene's median change magnitude to the typical level.

    Change is rare, so the median magnitude is the scene's no-change noise (season,
    registration, atmosphere); dividing by it makes "large difference" mean the same in a
    desert and in a green city.
    """
    mag = np.sqrt(((after - before) ** 2).sum(axis=0))[valid]
    median = float(np.median(mag)) if mag.size else 0.0
    return TYPICAL_SCENE_MAGNITUDE / median if median > 1e-6 else 1.0


def model_input(before: np.ndarray, after: np.ndarray, diff_scale: float = 1.0) -> np.ndarray:
    """CNN input from two normalised images (bands, h, w): before, after, (after − before)
    × ``diff_scale``.

    >>> import numpy as np
    >>> model_input(np.zeros((2, 4, 4), np.float32), np.ones((2, 4, 4), np.float32)).shape
    (6, 4, 4)
    """
    diff = after - before
    if diff_scale != 1.0:
        diff = diff * np.float32(diff_scale)
    return np.concatenate([before, after, diff], axis=0).astype(np.float32, copy=False)


def pixel_features(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per-pixel features for the gradient-boosting fallback, shape (h*w, n_features).

    Both normalised images, their difference, its magnitude, and 3×3 local means of the
    difference (a little spatial context, which per-pixel spectra lack).
    """
    from scipy.ndimage import uniform_filter

    diff = after - before
    mag = np.sqrt((diff**2).sum(axis=0, keepdims=True))
    smooth = np.stack([uniform_filter(d, size=3, mode="nearest") for d in diff])
    smooth_mag = uniform_filter(mag[0], size=5, mode="nearest")[None]
    feats = np.concatenate([before, after, diff, mag, smooth, smooth_mag], axis=0)
    return feats.reshape(feats.shape[0], -1).T.astype(np.float32, copy=False)
