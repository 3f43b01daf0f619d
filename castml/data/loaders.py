"""Load a project's data set (generator, CSV, Parquet, a scikit-learn set, a package's file).

Columns are renamed from their source names to the spec's feature names; nothing
else is changed here (ignored columns included), so that validation sees the data
exactly as it arrived.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from castml.data.sources import read_file, source_file
from castml.errors import SpecError
from castml.spec import ProjectSpec


def load_dataset(spec: ProjectSpec, path: str | Path | None = None) -> pd.DataFrame:
    """The raw data set of `spec`; `path` overrides the spec's source with a CSV/Parquet file.

    An override file is read with the source's CSV options when the source is a file of
    the same layout (csv or package_file); a Parquet file always as it is.
    """
    if path is not None:
        source = spec.source if spec.source.kind in {"csv", "package_file"} else None
        if source is not None:
            source = source.model_copy(update={"sha256": None})  # the digest is the source's
        frame = read_file(Path(path), source, spec)
    else:
        frame = _from_source(spec)
    renames = {f.column: f.name for f in spec.features if f.column and f.column != f.name}
    return frame.rename(columns=renames)


def read_table(path: Path) -> pd.DataFrame:
    """A plain CSV (with a header) or Parquet file."""
    return read_file(path)


def _from_source(spec: ProjectSpec) -> pd.DataFrame:
    source = spec.source
    if source.kind == "generator":
        from castml.data import generators

        return generators.generate(source.generator or "", source.rows or 10_000, source.seed)
    if source.kind == "sklearn":
        return _sklearn_frame(source.dataset or "", spec.target)
    return read_file(source_file(source), source, spec)


def _sklearn_frame(dataset: str, target: str) -> pd.DataFrame:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{dataset}", None)
    if loader is None:
        raise SpecError(f"scikit-learn has no bundled data set '{dataset}'")
    bunch = loader(as_frame=True)
    frame: pd.DataFrame = bunch.frame.rename(columns={"target": target})
    return frame


def data_hash(frame: pd.DataFrame) -> str:
    """A content hash of the validated data: column names, order and values.

    An all-numeric frame hashes its float64 values (as every version before typed features
    did, so the hashes of the bundled projects stay comparable); text and datetime columns
    hash with pandas' stable per-value hash instead.
    """
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    numeric = all(
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        for dtype in frame.dtypes
    )
    if numeric:
        digest.update(np.ascontiguousarray(frame.to_numpy(dtype=np.float64)).tobytes())
        return digest.hexdigest()[:16]
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            digest.update(np.ascontiguousarray(column.to_numpy(dtype=np.float64)).tobytes())
        else:
            hashed = pd.util.hash_pandas_object(column, index=False)
            digest.update(np.ascontiguousarray(hashed.to_numpy()).tobytes())
    return digest.hexdigest()[:16]
