"""Change detection: per-pixel change probability (CNN via onnxruntime, gradient boosting or
unsupervised change vector analysis), land-cover class per date, cleanup and vectorisation.

Submodules import only numpy/rasterio at import time so the training environment can use
:mod:`gis.change.features` and :mod:`gis.change.oscd` without the product's dependencies.
"""
