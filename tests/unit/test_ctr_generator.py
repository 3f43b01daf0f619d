"""The seeded CTR generator: reproducible, at the documented click rate, with its effects."""

from __future__ import annotations

import numpy as np
import pytest

from castml.data import ctr_generator, generators
from castml.data.validation import validated
from castml.spec import load_spec


@pytest.fixture(scope="module")
def frame():  # type: ignore[no-untyped-def]
    return ctr_generator.generate(30_000, seed=1)


def test_seeded_and_registered(frame) -> None:  # type: ignore[no-untyped-def]
    again = generators.generate("ctr", 30_000, 1)
    assert frame.equals(again)
    assert not frame.equals(ctr_generator.generate(30_000, seed=2))
    validated(frame, load_spec("ctr"))  # the ctr spec takes it as is


def test_click_rate_and_position_bias(frame) -> None:  # type: ignore[no-untyped-def]
    assert 0.01 <= frame["click"].mean() <= 0.03
    by_position = frame.groupby("position")["click"].mean()
    assert by_position[1] > by_position[2] > by_position[3]


def test_click_burst_follows_a_recent_click_in_the_slot(frame) -> None:  # type: ignore[no-untyped-def]
    slot = frame["item_id"] + "/" + frame["position"].astype(str)
    previous = frame.groupby(slot)["click"].shift(1)
    after_click = frame["click"][previous == 1].mean()
    after_none = frame["click"][previous == 0].mean()
    assert after_click > 2 * after_none  # +1.5 log-odds: about 4x at these rates


def test_noise_features_carry_no_signal(frame) -> None:  # type: ignore[no-untyped-def]
    from sklearn.metrics import roc_auc_score

    for name in ("noise_1", "noise_2", "noise_3"):
        assert abs(roc_auc_score(frame["click"], frame[name]) - 0.5) < 0.05
    assert abs(np.corrcoef(frame["noise_1"], frame["click"])[0, 1]) < 0.03
