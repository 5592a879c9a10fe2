"""Land-cover class per date from spectral indices: built-up, vegetation, water, bare.

A transparent rule set (no training data for the province exists), applied per pixel to
surface reflectances (Sentinel-2 digital numbers / 10,000):

* water: MNDWI = (green − SWIR1) / (green + SWIR1) > 0.1 and NDVI < 0.3 (open water and
  flooded paddies; the latter are handled as seasonal by the alert rules);
* vegetation: NDVI = (NIR − red) / (NIR + red) ≥ 0.35 (crops, orchards, forest);
* built-up vs bare for the rest: bare soil has a high bare-soil index
  BSI = ((SWIR1 + red) − (NIR + blue)) / ((SWIR1 + red) + (NIR + blue)) and red > green;
  built-up surfaces (roofs, concrete, asphalt) are flatter across the spectrum. Pixels with
  BSI > 0.12, or red/green > 1.15 and NDBI > 0.05, or NDVI ≥ 0.2 with red/green > 1.05
  (soil/vegetation mixtures) are bare, the others built-up.

The classes are coarse on purpose: they give each detected change a from→to that the alert
rules can reason with (e.g. vegetation → built-up on rice land), they are not a land-cover map.
Codes: 0 = unknown/no data, 1 = built_up, 2 = vegetation, 3 = water, 4 = bare.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gis.db.models import COVER_CLASSES

# the classes are defined once, with the schema (gis/db/models.py); codes 1..4 in that order
COVER_NAMES: dict[int, str] = dict(enumerate(COVER_CLASSES, start=1))
COVER_CODES: dict[str, int] = {v: k for k, v in COVER_NAMES.items()}
UNKNOWN = 0
NEEDED_BANDS = ("B02", "B03", "B04", "B08", "B11")


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    den = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.abs(den) > 1e-6, (a - b) / den, 0.0)
    return out.astype(np.float32)


def classify(
    values: np.ndarray, bands: Sequence[str], valid: np.ndarray, scale: float = 10000.0
) -> np.ndarray:
    """Classify reflectance values (bands, h, w) into cover codes (uint8, h, w).

    >>> import numpy as np
    >>> bands = ("B02", "B03", "B04", "B08", "B11")
    >>> veg = np.array([300, 600, 300, 4000, 1800], np.float32)[:, None, None]
    >>> water = np.array([900, 800, 500, 300, 100], np.float32)[:, None, None]
    >>> classify(np.concatenate([veg, water], axis=2), bands, np.ones((1, 2), bool)).tolist()
    [[2, 3]]
    """
    idx = {b: i for i, b in enumerate(bands)}
    missing = [b for b in NEEDED_BANDS if b not in idx]
    if missing:
        return np.zeros(values.shape[1:], dtype=np.uint8)
    blue, green, red, nir, swir = (values[idx[b]] / scale for b in NEEDED_BANDS)
    ndvi = _ratio(nir, red)
    mndwi = _ratio(green, swir)
    ndbi = _ratio(swir, nir)
    bsi = _ratio(swir + red, nir + blue)
    with np.errstate(divide="ignore", invalid="ignore"):
        red_green = np.where(green > 1e-6, red / green, 1.0)
    out = np.full(values.shape[1:], COVER_CODES["built_up"], dtype=np.uint8)
    # reddish soil-vegetation mixtures (NDVI 0.2-0.35, red > green) count as bare, not
    # built-up: on cropland a false "built-up" is a false alarm, a false "bare" is seasonal
    bare = (
        (bsi > 0.12) | ((red_green > 1.15) & (ndbi > 0.05)) | ((ndvi >= 0.2) & (red_green > 1.05))
    )
    out[bare] = COVER_CODES["bare"]
    out[ndvi >= 0.35] = COVER_CODES["vegetation"]
    out[(mndwi > 0.1) & (ndvi < 0.3)] = COVER_CODES["water"]
    out[~valid] = UNKNOWN
    return out


def majority(codes: np.ndarray) -> str | None:
    """Name of the most frequent known cover code in ``codes`` (None when all unknown)."""
    counts = np.bincount(codes.ravel(), minlength=5)[1:5]
    if counts.sum() == 0:
        return None
    return COVER_NAMES[int(np.argmax(counts)) + 1]
