"""Model inputs and per-pixel features shared by training and inference (numpy only)."""

from __future__ import annotations

import numpy as np


def change_magnitude(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per-pixel length of the change vector after − before (normalised units), (h, w)."""
    return np.sqrt(((after - before) ** 2).sum(axis=0))


def noise_level(magnitudes: np.ndarray) -> float:
    """The pair's no-change level: the median of its :func:`change_magnitude` over the valid
    pixels (``magnitudes``).

    Change covers a small share of a scene, so the median is set by what did not change
    (season, haze, registration); it differs from scene to scene (0.75–1.93 over OSCD's
    cities), and dividing by it makes "a large difference" mean the same in a desert and in a
    green city.
    """
    return float(np.median(magnitudes)) if magnitudes.size else 0.0


#: Median of :func:`noise_level` over OSCD's 8 development cities: the level the CNN's
#: difference channels are scaled to when the model was trained with ``--diff-norm``.
TYPICAL_NOISE_LEVEL = 1.2
#: The scale stays within this range: the model saw 0.62–1.56 in training, and an unusually
#: clean pair (e.g. synthetic images, noise level 0.2) must not blow small differences up.
DIFF_SCALE_RANGE = (0.5, 2.0)


def scale_for_noise(level: float) -> float:
    """The factor bringing a pair's :func:`noise_level` to the typical level, within
    :data:`DIFF_SCALE_RANGE`.

    >>> scale_for_noise(1.2), scale_for_noise(0.2), scale_for_noise(0.0)
    (1.0, 2.0, 2.0)
    """
    if level <= 1e-6:
        return DIFF_SCALE_RANGE[1]
    return min(max(TYPICAL_NOISE_LEVEL / level, DIFF_SCALE_RANGE[0]), DIFF_SCALE_RANGE[1])


def model_input(
    before: np.ndarray, after: np.ndarray, diff_scale: float = 1.0, diff_only: bool = False
) -> np.ndarray:
    """CNN input from two normalised images (bands, h, w): before, after and
    (after − before) × ``diff_scale``; only the last with ``diff_only``.

    >>> import numpy as np
    >>> model_input(np.zeros((2, 4, 4), np.float32), np.ones((2, 4, 4), np.float32)).shape
    (6, 4, 4)
    >>> model_input(np.zeros((2, 4, 4), np.float32), np.ones((2, 4, 4), np.float32), 2.0,
    ...             diff_only=True)[:, 0, 0].tolist()
    [2.0, 2.0]
    """
    diff = after - before
    if diff_scale != 1.0:
        diff = diff * np.float32(diff_scale)
    if diff_only:
        return diff.astype(np.float32, copy=False)
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
