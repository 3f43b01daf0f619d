"""Load a project's data set (generator, CSV, Parquet or a bundled scikit-learn set).

Columns are renamed from their source names to the spec's feature names; nothing
else is changed here, so that validation sees the data exactly as it arrived.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from castml.errors import DataValidationError, SpecError
from castml.spec import ProjectSpec


def load_dataset(spec: ProjectSpec, path: str | Path | None = None) -> pd.DataFrame:
    """The raw data set of `spec`; `path` overrides the spec's source with a CSV/Parquet file."""
    frame = read_table(Path(path)) if path is not None else _from_source(spec)
    renames = {f.column: f.name for f in spec.features if f.column and f.column != f.name}
    return frame.rename(columns=renames)


def read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SpecError(f"data file {path} does not exist")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt files
        raise DataValidationError(
            [f"{path}: cannot be read ({type(exc).__name__}: {exc})"]
        ) from exc
    raise SpecError(f"{path}: unsupported file type (use .csv or .parquet)")


def _from_source(spec: ProjectSpec) -> pd.DataFrame:
    source = spec.source
    if source.kind == "generator":
        from castml.data import generators

        return generators.generate(source.generator or "", source.rows or 10_000, source.seed)
    if source.kind == "sklearn":
        return _sklearn_frame(source.dataset or "", spec.target)
    return read_table(Path(source.path or ""))


def _sklearn_frame(dataset: str, target: str) -> pd.DataFrame:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{dataset}", None)
    if loader is None:
        raise SpecError(f"scikit-learn has no bundled data set '{dataset}'")
    bunch = loader(as_frame=True)
    frame: pd.DataFrame = bunch.frame.rename(columns={"target": target})
    return frame


def data_hash(frame: pd.DataFrame) -> str:
    """A content hash of the validated data: column names, order and values."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()[:16]
