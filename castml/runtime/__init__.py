"""Serving-time model code: numpy + LightGBM (+ XGBoost for its family), no torch, no pandas
on the hot path.

This package is bundled into every MLflow pyfunc model (`code_paths`, with the numpy
encoder from `castml.data` it needs), so a model loads with plain
`mlflow.pyfunc.load_model` where castml is not installed.
"""
