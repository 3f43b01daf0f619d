"""Register knowledge-base versions in a real MLflow the way the kb pipeline does.

A version of `<project>-kb` is a pyfunc whose artifact `index` is the index directory
(inside the model: `artifacts/index`, `castml.protocol.mlflow_names.INDEX_DIR_IN_PYFUNC`),
tagged `castml.data_hash` = the corpus hash. The pyfunc's own `predict` is never used by
serving (the knowledge role loads the index itself); it exists so that the version is an
MLflow model like any other.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from castml.protocol.mlflow_names import (
    CHAMPION,
    TAG_DATA_HASH,
    experiment_name,
    kb_model_name,
)


def _python_model() -> Any:
    import mlflow.pyfunc

    base: Any = mlflow.pyfunc.PythonModel

    class IndexModel(base):  # type: ignore[misc]
        def predict(self, context: Any, model_input: list[Any], params: Any = None) -> list[Any]:
            return model_input

    return IndexModel()


def register_kb_version(
    uri: str,
    project: str,
    index_dir: Path,
    *,
    corpus_hash: str,
    champion: bool = False,
) -> str:
    """Log `index_dir` as a new version of `<project>-kb`; returns its version number."""
    import mlflow
    from mlflow import MlflowClient

    name = kb_model_name(project)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_name(name))
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=f"{name}-index"):
        # MLflow keeps an artifact under its folder's own name: it must be called `index`.
        staged = Path(shutil.copytree(index_dir, Path(tmp) / "index"))
        mlflow.set_tag(TAG_DATA_HASH, corpus_hash)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_python_model(),
            artifacts={"index": str(staged)},
            pip_requirements=["mlflow"],
        )
        registered = mlflow.register_model(info.model_uri, name, tags={TAG_DATA_HASH: corpus_hash})
    version = str(registered.version)
    if champion:
        MlflowClient(uri, registry_uri=uri).set_registered_model_alias(name, CHAMPION, version)
    return version


def set_champion(uri: str, project: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(uri, registry_uri=uri).set_registered_model_alias(
        kb_model_name(project), CHAMPION, version
    )
