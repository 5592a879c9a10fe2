"""The scikit-learn fallback: a histogram gradient-boosting pixel classifier.

Trained on OSCD pixels (balanced sample of change / no-change pixels of the training cities)
with the features of :func:`gis.change.features.pixel_features`. Train and save with::

    .venv/bin/python scripts/train_change_gbm.py --out gis/models/change_gbm_v1.joblib
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gis.change.features import pixel_features
from gis.change.oscd import CITIES, load_city


def training_sample(
    root: Path, cities: Sequence[str], per_city: int = 30000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of a sample of pixels (a third change pixels) of ``cities``."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for city in cities:
        before, after, valid, label = load_city(root, city)
        feats = pixel_features(before, after)
        v = valid.ravel()
        y = label.ravel() & v
        pos = np.flatnonzero(y)
        neg = np.flatnonzero(v & ~y)
        n_pos = min(len(pos), per_city // 3)
        n_neg = min(len(neg), per_city - n_pos)
        idx = np.concatenate(
            [rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)]
        )
        xs.append(feats[idx])
        ys.append(y[idx])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int8)


def train_gbm(
    root: Path,
    holdout: Sequence[str] = (),
    seed: int = 0,
    samples: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
):
    """A fitted ``HistGradientBoostingClassifier`` on all OSCD cities but ``holdout``.

    ``samples`` (city → features, labels from :func:`training_sample`) avoids re-reading the
    cities for every leave-one-out fold.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    cities = [c for c in CITIES if c not in holdout]
    if samples is not None:
        x = np.concatenate([samples[c][0] for c in cities])
        y = np.concatenate([samples[c][1] for c in cities])
    else:
        x, y = training_sample(root, cities, seed=seed)
    # pos share ~1/3 in the sample vs a few % in scenes: weight the negatives back up a little
    weights = np.where(y == 1, 1.0, 2.0)
    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0, random_state=seed
    )
    model.fit(x, y, sample_weight=weights)
    return model
