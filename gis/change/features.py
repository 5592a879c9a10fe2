"""Model inputs and per-pixel features shared by training and inference (numpy only)."""

from __future__ import annotations

import numpy as np


def model_input(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """CNN input from two normalised images (bands, h, w): before, after, after − before.

    >>> import numpy as np
    >>> model_input(np.zeros((2, 4, 4), np.float32), np.ones((2, 4, 4), np.float32)).shape
    (6, 4, 4)
    """
    return np.concatenate([before, after, after - before], axis=0).astype(np.float32, copy=False)


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
