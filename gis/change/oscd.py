"""Reading the Onera Satellite Change Detection (OSCD) cities for training and benchmarks.

Labels (cm/<city>-cm.tif: 1 = no change, 2 = change, no georeference, on the grid of imgs_1)
are CC BY-NC-SA: read them from the shared data folder, never copy them into the product.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from gis.imagery import MODEL_BANDS, band_statistics, normalise, open_scene, read_full

CITIES: tuple[str, ...] = (
    "abudhabi",
    "aguasclaras",
    "bercy",
    "bordeaux",
    "nantes",
    "paris",
    "rennes",
    "saclay_e",
)


def load_label(root: Path, city: str) -> np.ndarray:
    """The change label of ``city`` as a bool array (True = change)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning: the label has no georeference
        with rasterio.open(Path(root) / city / "cm" / f"{city}-cm.tif") as ds:
            return ds.read(1) == 2


def load_pair(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised before/after images (bands, h, w) of an OSCD-style city folder (imgs_1,
    imgs_2; labelled or not) on the imgs_1 grid, and the valid mask."""
    folder = Path(folder)
    before = open_scene(folder / "imgs_1")
    after = open_scene(folder / "imgs_2")
    grid = before.grid
    b, vb = read_full(before, grid, MODEL_BANDS)
    a, va = read_full(after, grid, MODEL_BANDS)
    mb, sb, _, _ = band_statistics(before, grid, MODEL_BANDS)
    ma, sa, _, _ = band_statistics(after, grid, MODEL_BANDS)
    valid = vb & va
    return normalise(b, mb, sb, valid), normalise(a, ma, sa, valid), valid


def load_city(root: Path, city: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised before/after images (bands, h, w) on the imgs_1 grid, valid mask, label."""
    root = Path(root)
    before, after, valid = load_pair(root / city)
    label = load_label(root, city)
    if label.shape != valid.shape:
        raise ValueError(f"{city}: label {label.shape} and image {valid.shape} differ.")
    return before, after, valid, label
