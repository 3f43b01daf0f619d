"""Serving-time model code: numpy + LightGBM only, no torch, no pandas on the hot path.

This package is bundled into every MLflow pyfunc model (`code_paths`), so a model
loads with plain `mlflow.pyfunc.load_model` where castml is not installed.
"""
