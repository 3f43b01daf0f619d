"""One model version's lineage: data -> pipeline run -> version -> serving -> logs -> drift.

Every link is read from where its owner wrote it: the registry's version tags
(`castml.*` by the pipeline, among them `castml.data.*`, where the training data came
from, down to the log partitions of a retrain on logged traffic; `deployed.*` by the
rollout reconciler), the collector's
Parquet partitions, and the drift job's runs in `castml/<project>/monitoring`.
Nothing here keeps its own record, so the chain cannot disagree with the sources.
For a knowledge base (`<project>-kb`) the logs are its query log (`monitoring.kb_rows`):
how many queries a version answered, how often it had no answer, what it cited most.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from castml import registry
from castml.data.provenance import TAG_PREFIX as DATA_TAG_PREFIX
from castml.errors import CastmlError
from castml.protocol.forecast_record import OBSERVATIONS_DIR
from castml.protocol.kb_record import kb_base
from castml.protocol.mlflow_names import TAG_DATASET_DRIFT, TAG_DRIFT_STATUS, TAG_MODEL_VERSION
from monitoring.parquet_sink import FEEDBACK_DIR, ORPHANS_DIR

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEPLOYED_PREFIX = "deployed."  # written by serving/rollout.py (the reconciler)
MAX_DRIFT_REPORTS = 20
MOST_CITED = 5


class RequestNotFoundError(CastmlError):
    """No logged row carries the request id."""

    status_code = 404


@dataclass(frozen=True)
class Partition:
    path: Path
    files: int
    rows: int


@dataclass(frozen=True)
class DriftReport:
    run_id: str
    status: str
    dataset_drift: bool
    drift_share: float | None
    started_at_ms: int
    report_uri: str | None


@dataclass(frozen=True)
class RequestHit:
    """Where one request id was logged, and the label that came back for it."""

    request_id: str
    version: str
    file: Path
    rows: int
    probability: list[float]
    labels: list[float]


@dataclass(frozen=True)
class KbQueries:
    """A knowledge-base version's logged queries (the collector's Parquet)."""

    queries: int
    no_answer: int
    # (document, queries that cited it), most cited first; a document cited by several
    # passages of one answer counts once for that query.
    most_cited: list[tuple[str, int]]

    @property
    def no_answer_rate(self) -> float | None:
        return self.no_answer / self.queries if self.queries else None


@dataclass
class Lineage:
    project: str
    version: str
    aliases: list[str]
    data_hash: str
    pipeline_run_id: str
    training_run_id: str
    retrain_reason: str
    gate: str
    deployed: dict[str, str]
    # castml.data.* without the prefix: source, uri, and for a retrain on logged traffic
    # logged_rows, spec_rows, window, partitions ("<project>/<version>/date=...:rows ..."), dropped
    training_data: dict[str, str] = field(default_factory=dict)
    partitions: list[Partition] = field(default_factory=list)
    drift_reports: list[DriftReport] = field(default_factory=list)
    request: RequestHit | None = None
    kb_queries: KbQueries | None = None  # a knowledge base's version only


def partitions(logs_root: Path, project: str, version: str) -> list[Partition]:
    """`logs/<project>/<version>/date=...` with file and row counts (footer reads only)."""
    base = logs_root / project / version
    out: list[Partition] = []
    for part in sorted(base.glob("date=*")) if base.is_dir() else []:
        files = sorted(p for p in part.glob("*.parquet") if not p.name.startswith("."))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        out.append(Partition(part, len(files), rows))
    return out


def kb_queries(logs_root: Path, project: str, version: str) -> KbQueries:
    """Counts over `logs/<project>-kb/<version>/date=*/`: queries answered (a query whose
    answer never reached the collector is an orphan, not counted here)."""
    queries = no_answer = 0
    cited: Counter[str] = Counter()
    for part in partitions(logs_root, project, version):
        for file in sorted(part.path.glob("*.parquet")):
            if file.name.startswith("."):
                continue
            table = pq.read_table(file, columns=["no_answer", "documents"])
            queries += table.num_rows
            no_answer += sum(1 for flag in table["no_answer"].to_pylist() if flag)
            for documents in table["documents"].to_pylist():
                cited.update(set(documents or ()))
    return KbQueries(queries, no_answer, cited.most_common(MOST_CITED))


def _served_groups(logs_root: Path, project: str) -> list[Path]:
    """Version folders first, then orphans; never feedback (labels carry no version)."""
    base = logs_root / project
    if not base.is_dir():
        return []
    groups = sorted(
        p
        for p in base.iterdir()
        if p.is_dir() and p.name not in (FEEDBACK_DIR, ORPHANS_DIR, OBSERVATIONS_DIR)
    )
    return [*groups, base / ORPHANS_DIR]


def _labels(logs_root: Path, project: str, request_id: str) -> list[float]:
    found: list[float] = []
    for file in sorted((logs_root / project / FEEDBACK_DIR).glob("date=*/*.parquet")):
        table = pq.read_table(file, columns=["request_id", "label"])
        hit = table.filter(pc.equal(table["request_id"], request_id))
        found.extend(float(v) for v in hit["label"].to_pylist() if v is not None)
    return found


def find_request(logs_root: Path, project: str, request_id: str) -> RequestHit:
    """Scan the partitions newest day first; a request id lives in one file."""
    # A knowledge base's query log has no probability column (monitoring.kb_rows).
    kb = kb_base(project) is not None
    columns = (
        ["request_id", "model_version"] if kb else ["request_id", "probability", "model_version"]
    )
    for group in _served_groups(logs_root, project):
        for file in sorted(group.glob("date=*/*.parquet"), reverse=True):
            if file.name.startswith("."):
                continue
            table = pq.read_table(file, columns=columns)
            hit = table.filter(pc.equal(table["request_id"], request_id))
            if hit.num_rows == 0:
                continue
            versions = [str(v) for v in hit["model_version"].to_pylist() if v]
            return RequestHit(
                request_id=request_id,
                version=versions[0] if versions else "",  # a request orphan: no response came
                file=file,
                rows=hit.num_rows,
                probability=[]
                if kb
                else [float(p) for p in hit["probability"].to_pylist() if p is not None],
                labels=[] if kb else _labels(logs_root, project, request_id),
            )
    raise RequestNotFoundError(
        f"request id '{request_id}' is in no Parquet file under {logs_root / project}"
    )


def drift_reports(client: MlflowClient, project: str, version: str) -> list[DriftReport]:
    experiment = client.get_experiment_by_name(registry.monitoring_experiment_name(project))
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_MODEL_VERSION}` = '{version}'",
        order_by=["attributes.start_time DESC"],
        max_results=MAX_DRIFT_REPORTS,
    )
    out: list[DriftReport] = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        has_report = tags.get(TAG_DRIFT_STATUS) == "ok"
        report = f"{run.info.artifact_uri.rstrip('/')}/drift/drift_report.html"
        out.append(
            DriftReport(
                run_id=run.info.run_id,
                status=tags.get(TAG_DRIFT_STATUS, ""),
                dataset_drift=tags.get(TAG_DATASET_DRIFT) == "true",
                drift_share=metrics.get("drift_share"),
                started_at_ms=int(run.info.start_time or 0),
                report_uri=report if has_report else None,
            )
        )
    return out


def lineage(
    client: MlflowClient,
    project: str,
    logs_root: Path,
    version: str | None = None,
    request_id: str | None = None,
) -> Lineage:
    """The chain for `version`, for the version that served `request_id`, or for @champion."""
    hit = find_request(logs_root, project, request_id) if request_id else None
    if hit is not None and not hit.version and not version:
        raise RequestNotFoundError(
            f"request '{request_id}' was logged without its response (an orphan in "
            f"{hit.file}), so no version is known; pass --version"
        )
    ref: str | int = version or (hit.version if hit else f"@{registry.CHAMPION}")
    found: Any = registry.resolve_version(client, project, ref)
    tags: dict[str, str] = dict(found.tags or {})
    number = str(found.version)
    return Lineage(
        project=project,
        version=number,
        aliases=sorted(found.aliases or []),
        data_hash=tags.get(registry.TAG_DATA_HASH, ""),
        pipeline_run_id=tags.get(registry.TAG_PIPELINE_RUN, ""),
        training_run_id=str(found.run_id or ""),
        retrain_reason=tags.get(registry.TAG_RETRAIN_REASON, ""),
        gate=tags.get(registry.TAG_GATE, ""),
        deployed={
            k.removeprefix(DEPLOYED_PREFIX): v
            for k, v in sorted(tags.items())
            if k.startswith(DEPLOYED_PREFIX)
        },
        training_data={
            k.removeprefix(DATA_TAG_PREFIX): v
            for k, v in sorted(tags.items())
            if k.startswith(DATA_TAG_PREFIX)
        },
        partitions=partitions(logs_root, project, number),
        drift_reports=drift_reports(client, project, number),
        request=hit,
        kb_queries=kb_queries(logs_root, project, number) if kb_base(project) else None,
    )
