"""Issue 14, self-training of the change CNN: pseudo-labels only where two views agree.

The training script's ``pseudo_label`` (numpy + the product's detectors; torch is imported
only when training) labels change where the teacher CNN and CVA both see it, no change where
both see none, and leaves every disagreement out of the loss."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from gis.change.models import MODEL_DIR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def train_script():
    spec = importlib.util.spec_from_file_location(
        "train_change_model", ROOT / "scripts" / "train_change_model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pair(size: int = 96):
    rng = np.random.default_rng(0)
    before = rng.normal(0, 0.3, (10, size, size)).astype(np.float32)
    after = before + rng.normal(0, 0.3, before.shape).astype(np.float32)
    after[:, 30:50, 30:50] += 4.0  # a strong change block: both views see it
    valid = np.ones((size, size), bool)
    valid[:, -8:] = False  # no data: never labelled
    return before, after, valid


def test_pseudo_labels_where_teacher_and_cva_agree(train_script):
    before, after, valid = _pair()
    label, mask, pos_share, kept = train_script.pseudo_label(
        MODEL_DIR / "change_cnn_v3.onnx", before, after, valid, hi=0.6, lo=0.2
    )
    assert label.shape == mask.shape == valid.shape
    assert label.dtype == mask.dtype == np.float32
    # change is labelled inside the planted block only, and every label counts in the loss
    assert label[35:45, 35:45].mean() > 0.9
    assert label[:20, :20].sum() == 0 and label[70:, 70:].sum() == 0
    assert np.all(mask[label > 0] == 1)
    # quiet background: labelled no change (kept); no-data pixels: never in the loss
    assert mask[:20, :20].mean() > 0.9
    assert mask[:, -8:].sum() == 0
    assert 0 < pos_share < 0.1 and 0.5 < kept < 1


def test_a_disagreement_is_left_out_of_the_loss(train_script):
    """A pixel the teacher is unsure of is neither change nor no change."""
    before, after, valid = _pair()
    strict_label, strict_mask, _, strict_kept = train_script.pseudo_label(
        MODEL_DIR / "change_cnn_v3.onnx", before, after, valid, hi=0.999, lo=0.0
    )
    # no pixel is sure enough for "no change" (p < 0), few for "change": most are masked
    assert strict_kept < 0.2
    assert np.all(strict_mask[strict_label == 0] == 0)
