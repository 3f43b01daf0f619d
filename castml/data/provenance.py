"""Where a training data file came from: written into its Parquet footer, read back as tags.

Whoever builds a training file (the retrain's training-set builder, from logged
traffic) writes its lineage as string pairs under one key of the Parquet key-value
metadata, so the file describes itself wherever it travels (local disk, the MLflow
artifact store, a KFP pod). The pipeline's validate step reads it back, adds where
the file was read from, and the register step sets the result as `castml.data.*`
tags on the MLflow run and the model version (DESIGN.md §4).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from castml.protocol.mlflow_names import TAG_DATA_PREFIX, TAG_DATA_SOURCE, TAG_DATA_URI
from castml.spec import ProjectSpec

LINEAGE_KEY = b"castml.lineage"
TAG_PREFIX, TAG_SOURCE, TAG_URI = TAG_DATA_PREFIX, TAG_DATA_SOURCE, TAG_DATA_URI
MAX_TAG_CHARS = 4000  # MLflow refuses version tag values over 5000 characters

# Remote data locations the validate step downloads through MLflow before reading.
REMOTE_SCHEMES = (
    "runs:/",
    "mlflow-artifacts:/",
    "models:/",
    "s3://",
    "gs://",
    "http://",
    "https://",
)


def is_remote(data_path: str) -> bool:
    return data_path.startswith(REMOTE_SCHEMES)


def write_with_lineage(frame: pd.DataFrame, path: Path, lineage: dict[str, str]) -> None:
    """`frame` as Parquet at `path`, with `lineage` in the footer (temp file, then rename)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[LINEAGE_KEY] = json.dumps(lineage, sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table.replace_schema_metadata(metadata), tmp, compression="zstd")
    tmp.replace(path)


def read_lineage(path: Path) -> dict[str, str]:
    """The lineage a builder wrote into `path`; empty for a CSV or a Parquet file without one."""
    if path.suffix.lower() not in {".parquet", ".pq"} or not path.is_file():
        return {}
    try:
        return parquet_lineage(path)
    except (OSError, pa.ArrowException):
        return {}  # the loader reports an unreadable file with a better message


def parquet_lineage(path: Path) -> dict[str, str]:
    """The lineage in a Parquet file's footer, whatever its name (KFP artifacts have no suffix)."""
    raw = (pq.read_schema(path).metadata or {}).get(LINEAGE_KEY)
    if raw is None:
        return {}
    found = json.loads(raw)
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def data_tags(spec: ProjectSpec, data_path: str, local_file: Path | None) -> dict[str, str]:
    """`castml.data.*` tags for a run trained on `data_path` ("" = the spec's own source)."""
    if not data_path:
        source = spec.source
        where = source.generator or source.path or source.dataset or ""
        if source.kind == "package_file":
            where = f"{source.package}:{source.path}"
        return {TAG_SOURCE: f"spec:{source.kind}:{where}"}
    tags = {TAG_SOURCE: "file", TAG_URI: data_path}
    if local_file is not None:
        tags |= {
            k if k.startswith(TAG_PREFIX) else f"{TAG_PREFIX}{k}": v
            for k, v in read_lineage(local_file).items()
        }
    return {k: _fit(v) for k, v in tags.items()}


def _fit(value: str) -> str:
    return value if len(value) <= MAX_TAG_CHARS else value[: MAX_TAG_CHARS - 3] + "..."
