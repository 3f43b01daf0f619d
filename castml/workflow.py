"""The training workflow's steps, with file-path inputs and outputs.

The KFP components in `pipelines/` are thin shells over these functions, and
`run_direct` chains them in one process (the benchmark's peer, and a debugging
aid), so the pipeline and the direct path run the very same code.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from castml.spec import ProjectSpec, load_spec

# Each KFP component is a fresh process that runs one step: import per step, so
# `validate` and `split` pay for neither torch, LightGBM, MLflow nor the HTTP client.
if TYPE_CHECKING:
    from castml.evaluation import Evaluation
    from castml.models.train import EpochCallback
    from castml.registration import Registered


def resolve_params(
    spec: ProjectSpec, profile: str, overrides_json: str
) -> dict[str, dict[str, Any]]:
    overrides = json.loads(overrides_json) if overrides_json else None
    return spec.model.resolved(profile or None, overrides)


@dataclass(frozen=True)
class Validated:
    data_hash: str
    data_tags: dict[str, str]  # castml.data.*: where the data came from (castml.data.provenance)


# A spec in MLflow's artifact store, e.g. `runs:/<id>/studio/spec.yaml`: what a studio upload
# trained on a KFP cluster passes as `project`, since the pipeline's pods share nothing with
# the studio but MLflow (`studio.cluster_training`).
SPEC_IN_MLFLOW = ("runs:/", "mlflow-artifacts:/")


def project_spec(project: str, tracking_uri: str = "") -> ProjectSpec:
    """The spec `project` names: a bundled name, a YAML path, or a YAML in MLflow's store."""
    if not project.startswith(SPEC_IN_MLFLOW):
        return load_spec(project)
    return load_spec(_downloaded_spec(project, tracking_uri))


_SPEC_DOWNLOADS: dict[tuple[str, str], Path] = {}


def _downloaded_spec(uri: str, tracking_uri: str) -> Path:
    """The spec's local copy, fetched once per process (each KFP step is its own process)."""
    from castml.errors import SpecError

    key = (uri, tracking_uri)
    if key not in _SPEC_DOWNLOADS:
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        target = tempfile.mkdtemp(prefix="castml-spec-")
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=target, tracking_uri=tracking_uri or None
            )
        except (MlflowException, OSError) as exc:
            raise SpecError(f"spec {uri} cannot be read from MLflow: {exc}") from exc
        _SPEC_DOWNLOADS[key] = Path(local)
    return _SPEC_DOWNLOADS[key]


def validate_step(
    project: str, data_path: str, out_path: Path, tracking_uri: str = ""
) -> Validated:
    """Load and validate the data set; write it as Parquet; return its hash and lineage tags.

    `data_path` is "" (the spec's source), a local CSV/Parquet file, or a remote URI
    (`runs:/...`, `mlflow-artifacts:/...`: a retrain's training set in MLflow's artifact
    store, which every pipeline pod can read) downloaded through `tracking_uri` first.
    """
    from castml.data.loaders import data_hash, load_dataset
    from castml.data.provenance import data_tags, is_remote, write_with_lineage
    from castml.data.validation import validated

    spec = project_spec(project, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="castml-data-") as tmp:
        local = Path(data_path) if data_path else None
        if data_path and is_remote(data_path):
            import mlflow.artifacts

            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=data_path, dst_path=tmp, tracking_uri=tracking_uri or None
                )
            )
        frame = validated(load_dataset(spec, local), spec)
        tags = data_tags(spec, data_path, local)
    # The tags travel in the file: the split step reads `spec_rows` from them.
    write_with_lineage(frame, out_path, tags)
    return Validated(data_hash(frame), tags)


def split_step(
    project: str,
    data_path: Path,
    train_path: Path,
    validation_path: Path,
    test_path: Path,
    tracking_uri: str = "",
) -> None:
    """Train / validation / test split by the spec's split kind (random and stratified seeded).

    A retrain on logged traffic gets the spec's source first, then the logged rows
    (`castml.data.spec_rows` in the file's lineage). The two parts are split apart: the
    spec's rows exactly as a run on the spec's source splits them, so the champion,
    trained on that split, is never scored on rows it was trained on; the logged rows
    in the same proportions. The logged rows of the test part are marked
    (`castml.recent_window.RECENT_COLUMN`): the evaluation gates on them alone too.
    """
    from castml.data.provenance import TAG_PREFIX, parquet_lineage
    from castml.recent_window import RECENT_COLUMN

    spec = project_spec(project, tracking_uri)
    frame = pd.read_parquet(data_path)
    if spec.sequence is not None and not spec.sequence.flattened:
        from castml.data.sequence_windows import with_windows

        frame = with_windows(frame, spec)  # before the split: every row keeps its history
    spec_rows = int(parquet_lineage(data_path).get(f"{TAG_PREFIX}spec_rows", 0))
    parts = [frame]
    if 0 < spec_rows < len(frame):
        parts = [frame.iloc[:spec_rows], frame.iloc[spec_rows:].reset_index(drop=True)]
    splits = [_split(part, spec) for part in parts]
    if len(splits) == 2:
        spec_test, logged_test = splits[0][2], splits[1][2]
        splits[0] = (*splits[0][:2], spec_test.assign(**{RECENT_COLUMN: False}))
        splits[1] = (*splits[1][:2], logged_test.assign(**{RECENT_COLUMN: True}))
    fit, val, test = (pd.concat(pieces, ignore_index=True) for pieces in zip(*splits, strict=True))
    for part, path in ((fit, train_path), (val, validation_path), (test, test_path)):
        path.parent.mkdir(parents=True, exist_ok=True)
        part.reset_index(drop=True).to_parquet(path, index=False)


def _split(frame: pd.DataFrame, spec: ProjectSpec) -> tuple[pd.DataFrame, ...]:
    """(fit, validation, test) of `frame` by the spec's split kind (`ProjectSpec.split_kind`)."""
    if spec.split_kind == "time":
        return _time_split(frame, spec)
    from sklearn.model_selection import train_test_split

    def stratify(part: pd.DataFrame) -> pd.Series | None:
        if spec.split_kind != "stratified":
            return None
        counts = part[spec.target].value_counts()
        # A few logged rows may hold a class only once: then the split cannot stratify.
        return part[spec.target] if len(counts) > 1 and counts.min() >= 2 else None

    rest, test = train_test_split(
        frame, test_size=spec.split.test, random_state=spec.split.seed, stratify=stratify(frame)
    )
    share = spec.split.validation / (1 - spec.split.test)
    fit, val = train_test_split(
        rest, test_size=share, random_state=spec.split.seed, stratify=stratify(rest)
    )
    return fit, val, test


def _time_split(frame: pd.DataFrame, spec: ProjectSpec) -> tuple[pd.DataFrame, ...]:
    """Train on the past, validate on what follows, test on the latest rows.

    The shares round as scikit-learn's do (the held-out part up), so a time split holds
    as many rows in each part as a random split of the same frame would.
    """
    from castml.data.typed_values import time_values

    assert spec.time_column is not None  # split_kind is "time" only with one
    seconds = time_values(np.asarray(frame[spec.time_column].to_numpy())).values
    ordered = frame.iloc[np.argsort(seconds, kind="stable")]
    n_test = math.ceil(len(ordered) * spec.split.test)
    rest, test = ordered.iloc[: len(ordered) - n_test], ordered.iloc[len(ordered) - n_test :]
    n_val = math.ceil(len(rest) * spec.split.validation / (1 - spec.split.test))
    return rest.iloc[: len(rest) - n_val], rest.iloc[len(rest) - n_val :], test


def train_step(
    project: str,
    train_path: Path,
    validation_path: Path,
    model_dir: Path,
    baseline_dir: Path,
    profile: str = "",
    overrides_json: str = "",
    on_epoch: EpochCallback | None = None,
    tracking_uri: str = "",
) -> list[float]:
    """Train the spec's family (or each candidate family, keeping the best on validation).

    The model directory then holds the served model, its `spec.yaml` and `encoding.json`,
    and, with candidates, `candidates.json` (every family's validation scores). Returns
    the chosen family's training history.
    """
    spec = project_spec(project, tracking_uri)
    if "ae_gbm" in spec.model.families:
        # torch before LightGBM: with their OpenMP runtimes loaded the other way round,
        # AutoEncoder training ran 10-15 % slower here.
        import torch  # noqa: F401

    from castml.models.families import train_families

    params = resolve_params(spec, profile, overrides_json)
    return train_families(
        spec,
        pd.read_parquet(train_path),
        pd.read_parquet(validation_path),
        model_dir,
        baseline_dir,
        params,
        on_epoch,
    ).history


# What a family may report beside the loss (castml.models.train.EpochCallback's extra
# argument): the studio shows these four per epoch.
EPOCH_METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def epoch_logger(tracking_uri: str, run_id: str) -> Callable[..., None]:
    """An epoch callback that logs each epoch into the MLflow run `run_id`, step = epoch.

    Called as `(epoch, epochs, loss)` or `(epoch, epochs, loss, metrics)` with `metrics` a
    mapping of the family's per-epoch numbers (e.g. `EPOCH_METRICS`); without one the loss
    is logged as `train_loss`. `epochs` goes along as `total_epochs`, so a reader of the
    run knows how many epochs to expect.
    """
    import time

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)

    def log(
        epoch: int, epochs: int, loss: float, metrics: Mapping[str, float] | None = None
    ) -> None:
        values = dict(metrics) if metrics else {"train_loss": loss}
        values["total_epochs"] = float(epochs)
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[
                Metric(name, float(value), now, epoch)
                for name, value in values.items()
                if math.isfinite(float(value))
            ],
        )

    return log


def evaluate_step(
    project: str,
    model_dir: Path,
    baseline_dir: Path,
    test_path: Path,
    tracking_uri: str,
    data_hash_value: str,
    evaluation_path: Path,
    report_path: Path,
) -> Evaluation:
    """Score the candidate against floors, the baseline and the current @champion.

    The report carries the plots inline (the copy registration logs, in every mode); they
    are also written as `plots/*.png` beside it, for a person looking at a local run.
    """
    from castml import registry
    from castml.evaluation import evaluate, render_report
    from castml.evaluation_plots import write_pngs

    spec = project_spec(project, tracking_uri)
    champion = None
    mlflow_client = registry.client(tracking_uri)
    reigning = registry.alias_version(mlflow_client, spec.name, registry.CHAMPION)
    with tempfile.TemporaryDirectory() as tmp:
        if reigning is not None:
            version = int(reigning.version)
            champion = (
                version,
                registry.download_model_dir(spec.name, version, Path(tmp), tracking_uri),
            )
        result = evaluate(spec, model_dir, baseline_dir, pd.read_parquet(test_path), champion)
    evaluation_path.parent.mkdir(parents=True, exist_ok=True)
    evaluation_path.write_text(json.dumps(result.to_json(), indent=2))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(render_report(spec, result, data_hash_value))
    write_pngs(result.plots, report_path.parent / "plots")
    return result


def register_step(
    project: str,
    model_dir: Path,
    train_path: Path,
    evaluation_path: Path,
    report_path: Path,
    data_hash_value: str,
    pipeline_run_id: str,
    reason: str,
    tracking_uri: str,
    profile: str = "",
    overrides_json: str = "",
    data_tags_json: str = "",
    mlflow_run_id: str = "",
) -> Registered:
    """`mlflow_run_id` set: log into that existing run (the studio's) instead of a new one."""
    from castml.evaluation import Evaluation
    from castml.registration import register

    spec = project_spec(project, tracking_uri)
    return register(
        spec,
        tracking_uri,
        model_dir,
        pd.read_parquet(train_path),
        Evaluation.from_json(json.loads(evaluation_path.read_text())),
        report_path.read_text(),
        data_hash_value,
        pipeline_run_id,
        reason,
        resolve_params(spec, profile, overrides_json),
        json.loads(data_tags_json) if data_tags_json else None,
        run_id=mlflow_run_id or None,
    )


def run_direct(
    project: str,
    tracking_uri: str,
    workdir: Path,
    *,
    profile: str = "",
    overrides_json: str = "",
    data_path: str = "",
    reason: str = "manual",
    run_id: str = "direct",
    on_epoch: EpochCallback | None = None,
) -> Registered:
    """All five steps in this process, without KFP."""
    from castml import registry

    registry.ensure_reachable(tracking_uri)
    paths = {
        name: workdir / name
        for name in (
            "data.parquet",
            "train.parquet",
            "validation.parquet",
            "test.parquet",
            "model",
            "baseline",
            "evaluation.json",
            "report.html",
        )
    }
    data = validate_step(project, data_path, paths["data.parquet"], tracking_uri)
    split_step(
        project,
        paths["data.parquet"],
        paths["train.parquet"],
        paths["validation.parquet"],
        paths["test.parquet"],
    )
    train_step(
        project,
        paths["train.parquet"],
        paths["validation.parquet"],
        paths["model"],
        paths["baseline"],
        profile,
        overrides_json,
        on_epoch,
    )
    evaluate_step(
        project,
        paths["model"],
        paths["baseline"],
        paths["test.parquet"],
        tracking_uri,
        data.data_hash,
        paths["evaluation.json"],
        paths["report.html"],
    )
    return register_step(
        project,
        paths["model"],
        paths["train.parquet"],
        paths["evaluation.json"],
        paths["report.html"],
        data.data_hash,
        run_id,
        reason,
        tracking_uri,
        profile,
        overrides_json,
        json.dumps(data.data_tags),
    )
