"""Log a trained candidate to MLflow and register it as a new version of `<project>`.

All or nothing: the run is logged first; the version is created with its tags in
one call; aliases move last. If anything fails after the version exists, the
version is deleted again, so no half-registered version is left behind.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from castml import model_digests, registry
from castml.errors import MlflowUnavailableError, RegistryError
from castml.evaluation import Evaluation
from castml.protocol.mlflow_names import TAG_DIGESTS
from castml.runtime.loaded_model import LoadedModel, load_model
from castml.spec import ProjectSpec

RUNTIME_FILES = (
    "__init__.py",
    "runtime/__init__.py",
    "runtime/ae_gbm.py",
    "runtime/encoder.py",
    "runtime/loaded_model.py",
    "runtime/manifest.py",
    "runtime/pyfunc.py",
    "runtime/model_code.py",
)


@dataclass(frozen=True)
class Registered:
    version: int
    run_id: str
    aliases: list[str]
    gate: str
    reason: str


def bundle_runtime(dest: Path) -> Path:
    """A minimal copy of the castml package (runtime only) for the pyfunc's `code_paths`."""
    source = Path(__file__).parent
    package = dest / "castml"
    for relative in RUNTIME_FILES:
        target = package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target)
    return package


def pip_requirements() -> list[str]:
    import lightgbm
    import mlflow

    return [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"lightgbm=={lightgbm.__version__}",
    ]


def signature(model: LoadedModel) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs: list[Any] = [ColSpec("double", name) for name in model.features]
    outputs: list[Any] = (
        [ColSpec("float", "probability"), ColSpec("long", "label")]
        if model.manifest.is_classification
        else [ColSpec("float", "prediction")]
    )
    outputs += [ColSpec("float", f"latent_{i}") for i in range(model.manifest.latent_dim)]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def flatten(params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        f"{block}.{key}": value for block, values in params.items() for key, value in values.items()
    }


def reference_sample(spec: ProjectSpec, model: LoadedModel, train: pd.DataFrame) -> pd.DataFrame:
    """Rows the drift job compares traffic against: features, target and the model's score."""
    n = min(spec.monitoring.reference_rows, len(train))
    sample = train.sample(n=n, random_state=spec.split.seed).reset_index(drop=True)
    sample["score"] = model.score(sample[spec.feature_names].to_numpy(np.float32))
    return sample


def background_sample(spec: ProjectSpec, train: pd.DataFrame) -> np.ndarray:
    n = min(spec.monitoring.background_rows, len(train))
    rows = train.sample(n=n, random_state=spec.split.seed + 1)
    return np.asarray(rows[spec.feature_names].to_numpy(np.float32))


def register(
    spec: ProjectSpec,
    tracking_uri: str,
    model_dir: Path,
    train: pd.DataFrame,
    evaluation: Evaluation,
    report_html: str,
    data_hash: str,
    pipeline_run_id: str,
    reason: str,
    params: dict[str, dict[str, Any]],
    data_tags: dict[str, str] | None = None,
) -> Registered:
    """`data_tags` (`castml.data.*`, from the validate step) say where the training data came
    from; they go on the run and the version next to the contract's `castml.*` tags."""
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow_client = registry.client(tracking_uri)
    existing = mlflow_client.search_model_versions(f"name='{spec.name}'", max_results=1)
    reason = "initial" if not existing else reason
    model = load_model(model_dir)
    gate_tag = evaluation.gate.tag[:5000]
    version_tags = {
        registry.TAG_DATA_HASH: data_hash,
        registry.TAG_PIPELINE_RUN: pipeline_run_id,
        registry.TAG_GATE: gate_tag,
        registry.TAG_RETRAIN_REASON: reason,
    }
    version_tags = {**(data_tags or {}), **version_tags}  # never overrides the contract's
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(registry.experiment_name(spec.name))
    version: str | None = None
    try:
        with (
            mlflow.start_run(run_name=f"{spec.name}-{pipeline_run_id[:12]}") as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            mlflow.set_tags(version_tags)
            mlflow.log_params(flatten(params))
            mlflow.log_metrics(
                {
                    **evaluation.candidate,
                    **{f"baseline_{k}": v for k, v in evaluation.baseline.items()},
                }
            )
            mlflow.log_dict(evaluation.to_json(), "evaluation/evaluation.json")
            mlflow.log_text(report_html, registry.REPORT_ARTIFACT)
            work = Path(tmp)
            reference = work / Path(registry.REFERENCE_ARTIFACT).name
            reference_sample(spec, model, train).to_parquet(reference, index=False)
            mlflow.log_artifact(str(reference), str(Path(registry.REFERENCE_ARTIFACT).parent))
            background = work / Path(registry.BACKGROUND_ARTIFACT).name
            np.save(background, background_sample(spec, train))
            mlflow.log_artifact(str(background), str(Path(registry.BACKGROUND_ARTIFACT).parent))
            # What serving will check the download against before LightGBM sees a byte of it.
            version_tags[TAG_DIGESTS] = model_digests.encode(
                model_digests.served_digests(model_dir, background)
            )

            code = bundle_runtime(work / "code")
            info = mlflow.pyfunc.log_model(
                name=registry.MODEL_NAME,
                python_model=str(code / "runtime" / "model_code.py"),
                artifacts={"model": str(model_dir)},
                code_paths=[str(code)],
                signature=signature(model),
                input_example=train[spec.feature_names].head(2),
                pip_requirements=pip_requirements(),
            )
            registered = mlflow.register_model(info.model_uri, spec.name, tags=version_tags)
            version = registered.version
            aliases = [registry.CHALLENGER] if evaluation.gate.passed else []
            if (
                evaluation.gate.passed
                and registry.alias_version(mlflow_client, spec.name, registry.CHAMPION) is None
            ):
                aliases.append(registry.CHAMPION)
            for alias in aliases:
                mlflow_client.set_registered_model_alias(spec.name, alias, version)
            return Registered(int(version), run.info.run_id, aliases, gate_tag, reason)
    except (MlflowException, OSError) as exc:
        if version is not None:
            _delete_quietly(mlflow_client, spec.name, version)
        if isinstance(exc, OSError):  # requests' connection errors are OSErrors
            raise MlflowUnavailableError(tracking_uri, f"{exc}; nothing was registered") from exc
        raise RegistryError(
            f"registering {spec.name} at {tracking_uri} failed, nothing was registered: {exc}"
        ) from exc


def _delete_quietly(mlflow_client: Any, name: str, version: str) -> None:
    # Best effort: the error that got us here is the one to report.
    with contextlib.suppress(Exception):
        mlflow_client.delete_model_version(name, version)
