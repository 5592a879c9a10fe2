"""Shipped model files: ``change_cnn_v3.onnx`` (CNN change detector, see MODEL_CARD.md) and
``change_gbm_v1.joblib`` (gradient-boosting fallback). Data files only; nothing to import."""
