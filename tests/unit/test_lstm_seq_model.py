"""The lstm_seq family: windows, the numpy forward pass against torch, the epoch payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from castml.data.sequence_windows import (
    flattened_spec,
    predecessors,
    sequence_view,
    window_columns,
    window_names,
    windowed_frame,
)
from castml.data.tabular_encoding import EncodingError, encode_frame, fit, fit_columns
from castml.models import lstm_seq_family
from castml.models.train import EPOCH_METRICS, model_input
from castml.runtime.loaded_model import load_model
from castml.runtime.lstm_seq_model import LstmSeqModel, expand
from castml.spec import ProjectSpec, load_spec


def _small_spec(length: int = 3) -> ProjectSpec:
    body = load_spec("ctr").model_dump(by_alias=True)
    body["sequence"]["length"] = length
    return ProjectSpec.model_validate(body)


def _frame(rows: int = 3000) -> pd.DataFrame:
    from castml.data.ctr_generator import generate
    from castml.data.validation import validated

    return validated(generate(rows, seed=3), load_spec("ctr"))


def test_predecessors_follow_each_stream_in_order() -> None:
    keys = [np.array(["a", "b", "a", "a", "b"], dtype=object)]
    order = np.array([3.0, 1.0, 1.0, 2.0, 0.0])  # stream a in order: rows 2, 3, 0
    lags = predecessors(keys, order, 2)
    assert lags.tolist() == [[3, 2], [4, -1], [-1, -1], [2, -1], [-1, -1]]


def test_windowed_frame_carries_lag_values_labels_presence_and_age() -> None:
    spec = _small_spec(2)
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                ["2026-01-01 00:00", "2026-01-01 01:30", "2026-01-01 02:00"]
            ),
            "item_id": ["i1", "i1", "i2"],
            "item_category": ["shoes"] * 3,
            "position": [1.0, 1.0, 1.0],
            "user_group": ["g1", "g2", "g3"],
            "device": ["mobile"] * 3,
            "hour": [0.0, 1.0, 2.0],
            "noise_1": [0.0] * 3,
            "noise_2": [0.0] * 3,
            "noise_3": [0.0] * 3,
            "click": [1, 0, 0],
        }
    )
    window = windowed_frame(frame, spec)
    assert list(window.columns[: len(window_names(spec))]) == window_names(spec)
    assert window.loc[1, "user_group__lag1"] == "g1"
    assert window.loc[1, "click__lag1"] == 1.0
    assert window.loc[1, "age__lag1"] == pytest.approx(1.5)
    assert window.loc[1, "present__lag2"] == 0.0 and window.loc[1, "user_group__lag2"] is None
    assert window.loc[2, "present__lag1"] == 0.0  # another stream: no history
    assert windowed_frame(window, spec) is window  # already windowed upstream: kept


def test_flattened_spec_is_the_served_row_and_validates() -> None:
    spec = _small_spec(2)
    flat = flattened_spec(spec)
    assert flat.feature_names == window_names(spec)
    assert flat.sequence is not None and flat.sequence.flattened
    lag = next(f for f in flat.features if f.name == "item_id__lag2")
    assert lag.dtype == "categorical" and lag.missing == "impute"


def test_sequence_spec_refuses_keys_that_are_not_features() -> None:
    body = load_spec("ctr").model_dump(by_alias=True)
    body["sequence"]["keys"] = ["user_id"]
    with pytest.raises(ValueError, match=r"sequence\.keys user_id must be features"):
        ProjectSpec.model_validate(body)
    body = load_spec("ctr").model_dump(by_alias=True)
    body["sequence"] = None
    with pytest.raises(ValueError, match="lstm_seq needs sequence"):
        ProjectSpec.model_validate(body)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    spec = _small_spec(3)
    frame = _frame()
    train, validation = frame.iloc[:2000], frame.iloc[2000:]
    root = tmp_path_factory.mktemp("lstm")
    params = {
        "lstm_seq": {
            "epochs": 2,
            "batch_size": 128,
            "learning_rate": 0.01,
            "lstm_hidden": 8,
            "mlp_hidden": [8, 4],
            "dropout": 0.0,
        }
    }
    calls: list[tuple[Any, ...]] = []
    three_arg: list[tuple[int, int, float]] = []
    history = lstm_seq_family.train(
        spec,
        train,
        validation,
        root / "model",
        root / "baseline",
        params,
        lambda *args: calls.append(args),
    )
    data = lstm_seq_family.prepare(spec, train, validation)
    net, _, _ = lstm_seq_family.fit_network(
        data, params["lstm_seq"], 0, lambda e, n, loss: three_arg.append((e, n, loss))
    )
    return {
        "spec": spec,
        "root": root,
        "history": history,
        "calls": calls,
        "three_arg": three_arg,
        "data": data,
        "net": net,
        "validation": validation,
    }


def test_every_epoch_reports_the_studio_metrics(trained: dict[str, Any]) -> None:
    calls = trained["calls"]
    assert [c[:2] for c in calls] == [(1, 2), (2, 2)]
    for _, _, loss, metrics in calls:
        assert set(EPOCH_METRICS) <= set(metrics) and loss == metrics["train_loss"]
    assert len(trained["history"]) == 2
    assert [c[:2] for c in trained["three_arg"]] == [(1, 2), (2, 2)]  # old callbacks still work


def test_numpy_forward_pass_matches_torch(trained: dict[str, Any], tmp_path: Path) -> None:
    data, net = trained["data"], trained["net"]
    lstm_seq_family.save_network(net, data, tmp_path)
    model = load_model(tmp_path)
    assert isinstance(model, LstmSeqModel)
    current, steps = expand(data.design_validation, data.layout)
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(steps), torch.from_numpy(current))).numpy()
    got = model.score(data.design_validation)
    assert np.max(np.abs(got - expected)) < 1e-5
    raw = model_input(windowed_frame(trained["validation"], trained["spec"]), data.spec)
    assert np.max(np.abs(model.score(raw) - expected)) < 1e-5  # raw typed window, encoded here


def test_baselines_score_the_same_window_on_the_current_row(trained: dict[str, Any]) -> None:
    spec, root = trained["spec"], trained["root"]
    flat, window = sequence_view(spec, trained["validation"])
    x = model_input(window, flat)
    for directory in (
        root / "model",
        root / "baseline",
        root / "baseline/more/logistic_regression",
    ):
        model = load_model(directory)
        assert model.features == flat.model_input_names
        out = model.predict(x)
        assert out["probability"].shape == (len(x),)
        assert ((out["probability"] > 0) & (out["probability"] < 1)).all()
    lagless = x.copy()
    lagless[:, len(spec.features) :] = x[::-1, len(spec.features) :]  # other lags
    baseline = load_model(root / "baseline")
    assert np.array_equal(baseline.score(lagless), baseline.score(x))
    assert not np.allclose(
        load_model(root / "model").score(lagless), load_model(root / "model").score(x)
    )


def test_training_encodes_the_windows_as_the_windowed_frame_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = _small_spec(3)
    frame = _frame(1200)
    flat = flattened_spec(spec)
    window = windowed_frame(frame, spec)
    columns = window_columns(frame, spec)
    assert list(columns) == window_names(spec)
    state = fit_columns(columns, flat)
    assert state == fit(window, flat)
    monkeypatch.setattr(lstm_seq_family, "ENCODE_BLOCK_ROWS", 250)  # several blocks
    design = lstm_seq_family.encode_blocks(state, columns)
    assert np.array_equal(design, encode_frame(state, window, np.float32))


def test_a_refusal_in_blocks_counts_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    body = _small_spec(2).model_dump(by_alias=True)
    for feature in body["features"]:
        if feature["name"] == "device":
            feature["unknown"] = "refuse"
    spec = ProjectSpec.model_validate(body)
    frame = _frame(1000)
    state = fit_columns(window_columns(frame, spec), flattened_spec(spec))
    unseen = frame.copy()
    unseen.loc[[10, 900], "device"] = "smartwatch"  # in two different blocks
    monkeypatch.setattr(lstm_seq_family, "ENCODE_BLOCK_ROWS", 250)
    with pytest.raises(EncodingError) as refused:
        lstm_seq_family.encode_blocks(state, window_columns(unseen, spec))
    current = next(p for p in refused.value.problems if p.feature == "device")
    assert current.rows == 2 and "smartwatch" in current.message


def test_expand_writes_one_hot_numbers_and_extras_in_blocks(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from castml.runtime import lstm_seq_model

    data = trained["data"]
    whole = expand(data.design_validation, data.layout)
    monkeypatch.setattr(lstm_seq_model, "EXPAND_BLOCK_ROWS", 7)
    blocked = expand(data.design_validation, data.layout)
    assert all(np.array_equal(a, b) for a, b in zip(whole, blocked, strict=True))
    current, steps = whole
    r = data.layout.features
    assert current.shape == (len(data.design_validation), data.layout.width)
    onehot = [size for size in data.layout.onehot if size]
    assert np.array_equal(current[:, : onehot[0]].sum(axis=1), np.ones(len(current)))
    lag1_present = data.design_validation[:, r + r + 1]  # lag 1: features, label, present
    assert np.array_equal(steps[:, -1, data.layout.width + 1], lag1_present)


def test_training_threads_default_to_one_and_follow_the_params() -> None:
    assert lstm_seq_family.training_threads({}) == 1
    assert lstm_seq_family.training_threads({"threads": 3}) == 3
