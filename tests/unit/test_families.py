"""Model families as plugins: gbm and xgboost on typed tiny data, candidates, the spec and
encoding that travel with the model, and ae_gbm's refusal of typed features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from castml.data.tabular_encoding import EncodingError, encode_frame
from castml.data.validation import validated
from castml.errors import SpecError
from castml.models.families import CANDIDATES_FILE, read_candidates, train_families
from castml.models.holdout_metrics import classification_metrics, regression_metrics
from castml.models.train import BaselineModel, features_and_target
from castml.runtime.gbm import GbmModel
from castml.runtime.loaded_model import load_model
from castml.runtime.model_bundle import read_encoding, read_spec
from castml.runtime.xgboost_model import XgboostModel
from castml.spec import ProjectSpec

COLORS = np.array(["red", "green", "blue", "amber"])
FEATURES: list[dict[str, Any]] = [
    {"name": "num", "bounds": [-10, 10]},
    {"name": "count", "dtype": "int", "bounds": [0, 100]},
    {"name": "color", "dtype": "categorical", "missing": "impute"},
    {"name": "size", "dtype": "categorical", "categories": ["s", "m", "l"], "unknown": "other"},
    {"name": "flag", "dtype": "bool"},
    {"name": "seen", "dtype": "datetime", "missing": "impute"},
]
DERIVED = [{"name": "seen_month", "source": "seen", "part": "month"}]
PARAMS = {
    "gbm": {"n_estimators": 40, "max_depth": 4, "num_leaves": 15, "learning_rate": 0.2},
    "xgboost": {"n_estimators": 40, "max_depth": 4, "learning_rate": 0.2},
}


def _spec(task: str, family: str = "gbm", **model: Any) -> ProjectSpec:
    raw: dict[str, Any] = {
        "name": "families",
        "task": task,
        "target": "y",
        "source": {"kind": "csv", "path": "unused.csv"},
        "features": FEATURES,
        "derived": DERIVED,
        "model": {"family": family, "params": PARAMS, "seed": 1, **model},
        "validation": {"min_rows": 10, "min_class_rows": 5},
    }
    if task == "binary_classification":
        raw["class_names"] = ["no", "yes"]
    else:
        raw["target_transform"] = "log1p"
    return ProjectSpec.model_validate(raw)


def _frame(spec: ProjectSpec, rows: int, seed: int) -> pd.DataFrame:
    """Raw rows whose target hangs on a category: only a model that reads it does well."""
    rng = np.random.default_rng(seed)
    color = rng.choice(COLORS, rows).astype(object)
    num = rng.normal(size=rows)
    signal = (color == "red") * 2.0 + (color == "blue") * 1.0 + num
    color[rng.random(rows) < 0.05] = None  # missing: imputed
    frame = pd.DataFrame(
        {
            "num": num,
            "count": rng.integers(0, 100, rows),
            "color": color,
            "size": rng.choice(["s", "m", "l"], rows),
            "flag": rng.integers(0, 2, rows).astype(bool),
            "seen": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), "D"),
        }
    )
    frame.loc[frame.index[:3], "seen"] = pd.NaT  # imputed
    if spec.is_classification:
        frame["y"] = (signal + rng.normal(scale=0.5, size=rows) > 1.0).astype(int)
    else:
        frame["y"] = np.expm1(signal + 2 + rng.normal(scale=0.1, size=rows))
    return validated(frame, spec)


def _train(spec: ProjectSpec, tmp_path: Path) -> tuple[Path, Path, pd.DataFrame]:
    train, validation, test = (_frame(spec, n, seed) for n, seed in ((600, 0), (200, 1), (200, 2)))
    model_dir, baseline_dir = tmp_path / "model", tmp_path / "baseline"
    train_families(spec, train, validation, model_dir, baseline_dir, PARAMS)
    return model_dir, baseline_dir, test


@pytest.mark.parametrize(("family", "kind"), [("gbm", GbmModel), ("xgboost", XgboostModel)])
def test_binary_family_reads_categories_and_beats_its_stumps_baseline(
    family: str, kind: type, tmp_path: Path
) -> None:
    spec = _spec("binary_classification", family)
    model_dir, baseline_dir, test = _train(spec, tmp_path)
    model = load_model(model_dir)
    assert isinstance(model, kind)
    assert model.manifest.family == family and model.manifest.latent_dim == 0
    # The encoded matrix: the raw features, then the derived ones.
    assert model.features == [*spec.feature_names, "seen_month"] == spec.model_input_names

    x, y = features_and_target(test, spec)  # raw values, encoded by the model's own state
    encoded = encode_frame(read_encoding(model_dir), test, np.float32)
    np.testing.assert_array_equal(model.score(x), model.score(encoded))
    out = model.predict(encoded)
    assert set(out) == {"probability", "label"}
    np.testing.assert_array_equal(out["label"], out["probability"] >= model.manifest.threshold)
    metrics = classification_metrics(y, model.score(x), model.manifest.threshold)
    assert metrics["roc_auc"] > 0.85

    baseline = BaselineModel(baseline_dir)  # evaluation's contract: score(x) and threshold
    assert 0 < baseline.threshold < 1
    assert classification_metrics(y, baseline.score(x), baseline.threshold)["roc_auc"] > 0.5


def test_gbm_fast_path_answers_as_booster_predict(tmp_path: Path) -> None:
    spec = _spec("binary_classification")
    model_dir, _, test = _train(spec, tmp_path)
    model = GbmModel.load(model_dir)
    encoded = np.ascontiguousarray(encode_frame(model.encoding, test, np.float32))  # type: ignore[arg-type]
    assert model.direct.ready
    expected = model.booster.predict(encoded)
    np.testing.assert_allclose(model.score(encoded), expected, rtol=1e-6)
    np.testing.assert_allclose(model.score(encoded[:1]), expected[:1], rtol=1e-6)


@pytest.mark.parametrize("family", ["gbm", "xgboost"])
def test_regression_output_is_back_on_the_targets_scale(family: str, tmp_path: Path) -> None:
    spec = _spec("regression", family)
    model_dir, baseline_dir, test = _train(spec, tmp_path)
    model = load_model(model_dir)
    x, y = features_and_target(test, spec)
    prediction = model.predict(x)["prediction"]
    assert set(model.predict(x)) == {"prediction"}
    # Learned on log1p(y): a model that forgot to invert would answer around log1p(y).
    assert regression_metrics(np.log1p(y), np.log1p(prediction))["r2"] > 0.8
    assert abs(float(np.median(prediction)) - float(np.median(y))) < 0.2 * float(np.median(y))
    assert regression_metrics(y, BaselineModel(baseline_dir).score(x))["r2"] > 0


def test_candidates_train_each_family_and_the_best_goes_forward(tmp_path: Path) -> None:
    spec = _spec("binary_classification", "gbm", candidates=["gbm", "xgboost"])
    model_dir, baseline_dir, _ = _train(spec, tmp_path)
    evidence = read_candidates(model_dir)
    assert evidence is not None and evidence.metric == "roc_auc"
    assert set(evidence.scores) == {"gbm", "xgboost"}
    best = max(evidence.scores, key=lambda f: evidence.scores[f]["roc_auc"])
    assert evidence.family == best == load_model(model_dir).manifest.family
    assert (baseline_dir / "manifest.json").is_file()
    assert json.loads((model_dir / CANDIDATES_FILE).read_text())["family"] == best


def test_the_spec_and_encoding_travel_with_the_model(tmp_path: Path) -> None:
    spec = _spec("binary_classification")
    model_dir, _, _ = _train(spec, tmp_path)
    assert read_spec(model_dir) == spec
    state = read_encoding(model_dir)
    assert state.names == spec.feature_names
    assert "red" in state.features[2].vocabulary and state.features[2].impute is not None


def test_a_model_refuses_an_unknown_category_naming_feature_and_value(tmp_path: Path) -> None:
    spec = _spec("binary_classification")
    model_dir, _, test = _train(spec, tmp_path)
    x, _ = features_and_target(test.head(3), spec)
    x[0, 2] = "violet"  # color: unknown refused
    x[1, 3] = "xl"  # size: unknown -> other, accepted
    with pytest.raises(EncodingError, match="color: unknown category 'violet'"):
        load_model(model_dir).score(x)


def test_ae_gbm_refuses_typed_features_with_the_fix(tmp_path: Path) -> None:
    spec = _spec("binary_classification", "ae_gbm", params={**PARAMS, "autoencoder": {}})
    with pytest.raises(SpecError, match=r"set model\.family: gbm"):
        _train(spec, tmp_path)


def test_a_family_without_its_params_block_is_named(tmp_path: Path) -> None:
    spec = ProjectSpec.model_validate(
        _spec("binary_classification").model_dump(by_alias=True)
        | {"model": {"family": "xgboost", "params": {"gbm": {}}}}
    )
    with pytest.raises(SpecError, match="xgboost: xgboost"):
        _train(spec, tmp_path)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"family": "gbm", "candidates": ["xgboost"]}, "must be one of model.candidates"),
        ({"family": "gbm", "candidates": ["gbm", "gbm"]}, "repeats gbm"),
        ({"family": "forest"}, "family"),
    ],
)
def test_candidate_lists_are_checked(model: dict[str, Any], message: str) -> None:
    raw = _spec("binary_classification").model_dump(by_alias=True)
    raw["model"] = {"params": PARAMS} | model
    with pytest.raises(ValidationError, match=message):
        ProjectSpec.model_validate(raw)


def test_the_pyfunc_signature_takes_raw_typed_columns(tmp_path: Path) -> None:
    from castml.registration import input_example, pip_requirements, signature

    spec = _spec("binary_classification", "xgboost")
    model_dir, _, test = _train(spec, tmp_path)
    inputs = {c.name: c for c in signature(load_model(model_dir), spec).inputs.inputs}
    assert list(inputs) == spec.feature_names
    assert [inputs[n].type.name for n in ("num", "count", "color", "flag", "seen")] == [
        "double",
        "long",
        "string",
        "boolean",
        "datetime",
    ]
    assert not inputs["color"].required and inputs["size"].required  # imputed / refused
    example = input_example(spec, test)
    assert str(example["count"].dtype) == "int64" and str(example["flag"].dtype) == "bool"
    assert "xgboost-cpu==3.2.0" in pip_requirements("xgboost", spec)
    assert not any(r.startswith("xgboost") for r in pip_requirements("gbm", spec))
