"""Log a trained candidate to MLflow and register it as a new version of `<project>`.

All or nothing: the run is logged first; the version is created with its tags in
one call; aliases move last. If anything fails after the version exists, the
version is deleted again, so no half-registered version is left behind.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from castml import model_digests, registry
from castml.errors import MlflowUnavailableError, RegistryError
from castml.evaluation import Evaluation
from castml.evaluation_plots import PLOTS_ARTIFACT_DIR, plots_from_html, write_pngs
from castml.models.families import read_candidates
from castml.models.train import model_input, needs_encoding
from castml.protocol.mlflow_names import TAG_DIGESTS
from castml.runtime.loaded_model import LoadedModel, load_model
from castml.runtime.model_bundle import design_matrix, read_encoding
from castml.spec import Feature, ProjectSpec

# What the pyfunc imports, and nothing more: numpy, pandas (the pyfunc boundary),
# LightGBM, XGBoost (the xgboost family only) and holidays (a holiday part only).
RUNTIME_FILES = (
    "__init__.py",
    "errors.py",
    "data/__init__.py",
    "data/calendar_features.py",
    "data/lag_features.py",
    "data/tabular_encoding.py",
    "data/target_transform.py",
    "data/typed_values.py",
    "runtime/__init__.py",
    "runtime/ae_gbm.py",
    "runtime/direct_gbm.py",
    "runtime/encoded_model.py",
    "runtime/encoder.py",
    "runtime/forecast_model.py",
    "runtime/gbm.py",
    "runtime/loaded_model.py",
    "runtime/lstm_seq_model.py",
    "runtime/manifest.py",
    "runtime/model_bundle.py",
    "runtime/pyfunc.py",
    "runtime/model_code.py",
    "runtime/xgboost_model.py",
)
# spec feature type -> the pyfunc signature's column type (raw values, before encoding).
# MLflow refuses int64 for a double column and a float for a long one, so an int feature
# is long unless its missing values are imputed (then a column with a gap is float).
SIGNATURE_TYPES = {
    "float": "double",
    "int": "long",
    "bool": "boolean",
    "categorical": "string",
    "datetime": "datetime",
}


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


def pip_requirements(family: str = "ae_gbm", spec: ProjectSpec | None = None) -> list[str]:
    import lightgbm
    import mlflow

    requirements = [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"lightgbm=={lightgbm.__version__}",
    ]
    if family in ("xgboost", "forecast"):  # a forecast's horizons may use either booster
        requirements.append(f"xgboost-cpu=={metadata.version('xgboost-cpu')}")
    if spec is not None and any(d.part == "holiday" for d in spec.derived):
        requirements.append(f"holidays=={metadata.version('holidays')}")
    return requirements


def signature(model: LoadedModel, spec: ProjectSpec | None = None) -> Any:
    """The pyfunc's schema: raw typed columns for a typed spec (text for a categorical,
    optional where the spec imputes a missing value), float columns otherwise."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs: list[Any] = [ColSpec("double", name) for name in model.features]
    if spec is not None and needs_encoding(spec) and spec.task != "forecast":
        inputs = [
            ColSpec(_column_type(f), f.name, required=f.missing != "impute") for f in spec.features
        ]
    outputs: list[Any] = (
        [ColSpec("float", "probability"), ColSpec("long", "label")]
        if model.manifest.is_classification
        else [ColSpec("float", "prediction")]
    )
    outputs += [ColSpec("float", f"latent_{i}") for i in range(model.manifest.latent_dim)]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _column_type(feature: Feature) -> str:
    if feature.dtype in {"int", "bool"} and feature.missing == "impute":
        return "double"
    return SIGNATURE_TYPES[feature.dtype]


def input_example(spec: ProjectSpec, train: pd.DataFrame) -> pd.DataFrame:
    """Two training rows as a client sends them (ints and bools as such, not as floats)."""
    if spec.task == "forecast":  # design rows, built from a history (castml.forecast_samples)
        from castml import forecast_samples

        return forecast_samples.input_example(spec, train)
    rows = train[spec.feature_names].head(2).copy()
    if needs_encoding(spec):
        for feature in spec.features:
            kind = _column_type(feature)
            if kind in {"long", "boolean"}:
                rows[feature.name] = rows[feature.name].astype("int64" if kind == "long" else bool)
    return rows


def flatten(params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        f"{block}.{key}": value for block, values in params.items() for key, value in values.items()
    }


def reference_sample(spec: ProjectSpec, model: LoadedModel, train: pd.DataFrame) -> pd.DataFrame:
    """Rows the drift job compares traffic against: features, target and the model's score."""
    if spec.task == "forecast":
        from castml import forecast_samples

        return forecast_samples.reference_sample(spec, model, train)
    n = min(spec.monitoring.reference_rows, len(train))
    sample = train.sample(n=n, random_state=spec.split.seed).reset_index(drop=True)
    sample["score"] = model.score(model_input(sample, spec))
    return sample


def background_sample(
    spec: ProjectSpec, train: pd.DataFrame, model_dir: Path | None = None
) -> np.ndarray:
    """The explainer's background rows in the model's input space: for a typed spec, the
    encoded matrix (one column per raw feature, so attributions stay per raw feature)."""
    if spec.task == "forecast":
        from castml import forecast_samples

        return forecast_samples.background_sample(spec, train)
    n = min(spec.monitoring.background_rows, len(train))
    rows = train.sample(n=n, random_state=spec.split.seed + 1)
    if model_dir is not None and needs_encoding(spec):
        return design_matrix(model_input(rows, spec), read_encoding(model_dir))
    return np.asarray(rows[spec.feature_names].to_numpy(np.float32))


def log_candidates(model_dir: Path) -> None:
    """The candidate families' validation scores, as evidence beside the chosen one."""
    import mlflow

    result = read_candidates(model_dir)
    if result is None:
        return
    mlflow.log_param("model.selected_by", f"validation {result.metric}")
    mlflow.log_metrics(
        {
            f"candidate.{family}.{metric}": value
            for family, scores in result.scores.items()
            for metric, value in scores.items()
        }
    )
    mlflow.log_dict(asdict(result), "evaluation/candidates.json")


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
    *,
    run_id: str | None = None,
) -> Registered:
    """`data_tags` (`castml.data.*`, from the validate step) say where the training data came
    from; they go on the run and the version next to the contract's `castml.*` tags.

    `run_id`: log into that existing run (the studio creates it before the pipeline starts,
    so its id is known at once and the epochs land in it) instead of starting a new one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from castml.data.sequence_windows import sequence_view

    # A sequence model is logged under its flattened spec (each row with its window): the
    # pyfunc's signature and example, the reference and background samples all hold windows.
    spec, train = sequence_view(spec, train)
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
            mlflow.start_run(
                run_id=run_id, run_name=None if run_id else f"{spec.name}-{pipeline_run_id[:12]}"
            ) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            mlflow.set_tags(version_tags)
            mlflow.log_params(flatten(params))
            mlflow.log_param("model.family", model.manifest.family)
            log_candidates(model_dir)
            mlflow.log_metrics(
                {
                    **evaluation.candidate,
                    **{f"baseline_{k}": v for k, v in evaluation.baseline.items()},
                }
            )
            mlflow.log_dict(evaluation.to_json(), "evaluation/evaluation.json")
            mlflow.log_text(report_html, registry.REPORT_ARTIFACT)
            # The report carries its plots (the one file that reaches this step in every
            # mode); each also becomes a PNG the MLflow UI shows: evaluation/plots/*.png.
            plots = write_pngs(plots_from_html(report_html), Path(tmp) / "plots")
            if plots:
                mlflow.log_artifacts(str(plots[0].parent), PLOTS_ARTIFACT_DIR)
            work = Path(tmp)
            reference = work / Path(registry.REFERENCE_ARTIFACT).name
            reference_sample(spec, model, train).to_parquet(reference, index=False)
            mlflow.log_artifact(str(reference), str(Path(registry.REFERENCE_ARTIFACT).parent))
            background = work / Path(registry.BACKGROUND_ARTIFACT).name
            np.save(background, background_sample(spec, train, model_dir))
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
                signature=signature(model, spec),
                input_example=input_example(spec, train),
                pip_requirements=pip_requirements(model.manifest.family, spec),
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
