"""KFP v2 components: thin shells over `castml.workflow`, passing typed artifacts.

No `from __future__ import annotations` here: KFP reads the real annotation objects.

Each function body is what KFP runs inside the component's container (or, with
kfp.local, in a subprocess), so imports live inside the bodies.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from castml.settings import PipelineSettings

PIPELINE_IMAGE = PipelineSettings().pipeline_image


def _component(func: Callable[..., Any]) -> Any:
    # The image already carries castml and kfp: never pip-install at run time.
    return dsl.component(func, base_image=PIPELINE_IMAGE, install_kfp_package=False)


@_component
def validate(
    project: str,
    data_path: str,
    mlflow_uri: str,
    dataset: Output[Dataset],
) -> NamedTuple("Validated", [("data_hash", str), ("data_tags", str)]):  # type: ignore[valid-type]
    """Validate the raw data against the spec: the validated table, its hash and its lineage.

    `data_path` empty: the spec's source; a file or a `runs:/` URI (read through MLflow):
    e.g. a retrain's training set built from logged traffic. `data_tags` (JSON) say which.
    """
    import json
    from collections import namedtuple
    from pathlib import Path

    from castml.workflow import validate_step

    result = validate_step(project, data_path, Path(dataset.path), mlflow_uri)
    dataset.metadata["data_hash"] = result.data_hash
    dataset.metadata.update(result.data_tags)
    Validated = namedtuple("Validated", ["data_hash", "data_tags"])  # KFP reads NamedTuple outputs
    return Validated(result.data_hash, json.dumps(result.data_tags, sort_keys=True))


@_component
def split(
    project: str,
    dataset: Input[Dataset],
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
    mlflow_uri: str = "",
) -> None:
    """Seeded, stratified train / validation / test split."""
    from pathlib import Path

    from castml.workflow import split_step

    split_step(
        project,
        Path(dataset.path),
        Path(train.path),
        Path(validation.path),
        Path(test.path),
        mlflow_uri,
    )


@_component
def train(
    project: str,
    profile: str,
    params_override: str,
    train: Input[Dataset],
    validation: Input[Dataset],
    model: Output[Model],
    baseline: Output[Model],
    training_metrics: Output[Metrics],
    mlflow_uri: str = "",
    mlflow_run_id: str = "",
) -> None:
    """AutoEncoder + GBM (the served model) and the 30-feature GBM baseline.

    `mlflow_run_id` set (the studio's run): every epoch's metrics go to that MLflow run.
    """
    from pathlib import Path
    from typing import Any

    from castml.workflow import epoch_logger, train_step

    log_epoch = epoch_logger(mlflow_uri, mlflow_run_id) if mlflow_run_id else None

    def report(epoch: int, epochs: int, loss: float, *more: Any) -> None:
        if log_epoch is not None:
            log_epoch(epoch, epochs, loss, *more)
        if epoch == epochs or epoch % max(1, epochs // 10) == 0 or log_epoch is not None:
            print(f"epoch {epoch}/{epochs} loss {loss:.4f}", flush=True)

    history = train_step(
        project,
        Path(train.path),
        Path(validation.path),
        Path(model.path),
        Path(baseline.path),
        profile,
        params_override,
        report,
        mlflow_uri,
    )
    training_metrics.log_metric("autoencoder_final_loss", round(history[-1], 6))
    training_metrics.log_metric("autoencoder_epochs", len(history))


@_component
def evaluate(
    project: str,
    mlflow_uri: str,
    data_hash: str,
    model: Input[Model],
    baseline: Input[Model],
    test: Input[Dataset],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
) -> NamedTuple("Gate", [("passed", bool), ("verdict", str)]):  # type: ignore[valid-type]
    """Holdout metrics for candidate, baseline and @champion; the gate verdict."""
    from collections import namedtuple
    from pathlib import Path

    from castml.workflow import evaluate_step, project_spec

    result = evaluate_step(
        project,
        Path(model.path),
        Path(baseline.path),
        Path(test.path),
        mlflow_uri,
        data_hash,
        Path(evaluation.path),
        Path(report.path),
    )
    for name, value in result.candidate.items():
        metrics.log_metric(name, round(value, 6))
    for name, value in result.baseline.items():
        metrics.log_metric(f"baseline_{name}", round(value, 6))
    if result.confusion_matrix is not None:
        classes = project_spec(project, mlflow_uri).class_names or ("0", "1")
        classification.log_confusion_matrix(list(classes), result.confusion_matrix)
    Gate = namedtuple("Gate", ["passed", "verdict"])  # KFP reads NamedTuple outputs
    return Gate(result.gate.passed, result.gate.tag)


@_component
def register(
    project: str,
    mlflow_uri: str,
    data_hash: str,
    data_tags: str,
    retrain_reason: str,
    pipeline_run_id: str,
    profile: str,
    params_override: str,
    model: Input[Model],
    train: Input[Dataset],
    evaluation: Input[Artifact],
    report: Input[HTML],
    mlflow_run_id: str = "",
) -> int:
    """Log the run, register the version with its tags, move @challenger if the gate passed.

    `mlflow_run_id` set: that run (created by the studio, holding the epochs) is reused.
    """
    from pathlib import Path

    from castml.workflow import register_step

    registered = register_step(
        project,
        Path(model.path),
        Path(train.path),
        Path(evaluation.path),
        Path(report.path),
        data_hash,
        pipeline_run_id,
        retrain_reason,
        mlflow_uri,
        profile,
        params_override,
        data_tags,
        mlflow_run_id,
    )
    aliases = ", ".join(f"@{a}" for a in registered.aliases) or "no alias"
    print(
        f"registered {project} version {registered.version} ({aliases}); gate {registered.gate}",
        flush=True,
    )
    return registered.version
