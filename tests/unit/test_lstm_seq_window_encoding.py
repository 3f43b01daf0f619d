"""The lstm_seq family's window encoding: lags fitted once per feature, encoded by gather.

`prepare` builds the encoded windows from each feature's column and the lags' rows; these
tests hold it to the plain route (every window column built, then encoded), element for
element, with missing values, unknown categories and frames windowed upstream.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from castml.data.sequence_windows import (
    flattened_spec,
    lag_name,
    window_columns,
    window_names,
    with_windows,
)
from castml.data.tabular_encoding import EncodingError
from castml.models import lstm_seq_family
from castml.spec import ProjectSpec, load_spec


def _spec(length: int = 3, **rules: dict[str, object]) -> ProjectSpec:
    body = load_spec("ctr").model_dump(by_alias=True)
    body["sequence"]["length"] = length
    for feature in body["features"]:
        feature.update(rules.get(feature["name"], {}))
    return ProjectSpec.model_validate(body)


def _frame(rows: int = 1500) -> pd.DataFrame:
    from castml.data.ctr_generator import generate
    from castml.data.validation import validated

    return validated(generate(rows, seed=5), load_spec("ctr"))


def _plain(state: object, frame: pd.DataFrame, spec: ProjectSpec) -> np.ndarray:
    return lstm_seq_family.encode_blocks(state, window_columns(frame, spec))  # type: ignore[arg-type]


def test_each_feature_is_fitted_once_for_all_its_lags() -> None:
    spec = _spec(3)
    frame = _frame()
    flat = flattened_spec(spec)
    state = lstm_seq_family.fit_windows(lstm_seq_family.windows(frame, spec), spec, flat)
    assert state.names == flat.feature_names == window_names(spec)
    by_name = {f.name: f for f in state.features}
    for feature in spec.features:
        first = by_name[lag_name(feature.name, 1)]
        assert first.missing == "impute" and first.impute is not None
        assert first.vocabulary == by_name[feature.name].vocabulary  # codes as the current row's
        for lag in (2, 3):
            assert by_name[lag_name(feature.name, lag)] == replace(
                first, name=lag_name(feature.name, lag)
            )
    assert by_name["age__lag1"].impute != by_name["age__lag3"].impute  # extras: each its own


def test_gathered_windows_equal_the_encoded_window_columns() -> None:
    # Missing values to impute (a lag of a missing value takes the lag's fill, not the
    # current row's declared one) and, in validation, categories training never saw.
    spec = _spec(
        3,
        noise_1={"missing": "impute", "impute": 0.75},
        user_group={"missing": "impute", "impute": "declared"},
    )
    frame = _frame()
    frame.loc[frame.index[::7], "noise_1"] = np.nan
    frame.loc[frame.index[::11], "user_group"] = None
    train, validation = frame.iloc[:1000].copy(), frame.iloc[1000:].copy()
    validation.loc[validation.index[::5], "item_id"] = "item_never_seen"
    data = lstm_seq_family.prepare(spec, train, validation)
    assert data.design_train.dtype == np.float32
    assert np.array_equal(data.design_train, _plain(data.state, train, spec))
    assert np.array_equal(data.design_validation, _plain(data.state, validation, spec))
    lag = window_names(spec).index("noise_1__lag1")
    assert 0.75 in data.design_train[:, 6] and 0.75 not in data.design_train[:, lag]


def test_a_frame_windowed_upstream_encodes_its_own_lag_columns() -> None:
    spec = _spec(2)
    frame = with_windows(_frame(), spec)  # validation rows keep history from training rows
    train, validation = frame.iloc[:1000], frame.iloc[1000:]
    data = lstm_seq_family.prepare(spec, train, validation)
    assert np.array_equal(data.design_validation, _plain(data.state, validation, spec))
    built = lstm_seq_family.prepare(spec, _frame().iloc[:1000], _frame().iloc[1000:])
    assert data.state == built.state  # the same fit, from the same rows
    assert not np.array_equal(data.design_validation, built.design_validation)


def test_a_refusal_names_the_problem_with_every_row() -> None:
    spec = _spec(2, device={"unknown": "refuse"})
    frame = _frame(1000)
    validation = frame.iloc[600:].copy()
    validation.loc[validation.index[[10, 300]], "device"] = "smartwatch"
    with pytest.raises(EncodingError) as refused:
        lstm_seq_family.prepare(spec, frame.iloc[:600], validation)
    current = next(p for p in refused.value.problems if p.feature == "device")
    assert current.rows == 2 and "smartwatch" in current.message


def test_roc_auc_is_sklearns_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.05).astype(np.float32)
    score = np.round(rng.random(3000) + 0.4 * y, 2)  # many ties
    assert lstm_seq_family.roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
