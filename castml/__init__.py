"""castml: an MLOps platform on Kubernetes (KFP, MLflow, KServe, Evidently).

Kept import-free on purpose: the MLflow pyfunc bundles this package with
`code_paths`, and the serving runtime must not pull in training dependencies.
"""

__version__ = "0.1.0"
