"""A long column of text objects is read once per distinct value
(castml.data.typed_values._distinct_text): the same texts and missing marks as reading
each value, and the per-value reading whenever the objects are not all text."""

from __future__ import annotations

import numpy as np
import pytest

from castml.data import typed_values


def column(extra: object = None) -> np.ndarray:
    values = np.array([f"cat{i % 37}" for i in range(6000)], dtype=object)
    values[::97] = None
    values[::89] = ""
    values[::83] = float("nan")
    values[7] = "한국어 범주"
    if extra is not None:
        one = np.empty(1, dtype=object)
        one[0] = extra  # a list stays one value
        values[11:12] = one
    return values


@pytest.mark.parametrize("extra", [None, 1, 1.0, True, b"bytes", "1"])
def test_distinct_values_read_as_each_value_is(
    extra: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = column(extra)
    once = typed_values.parse(raw, "categorical")
    monkeypatch.setattr(typed_values, "DISTINCT_FROM", 10**9)  # every value on its own
    each = typed_values.parse(raw, "categorical")
    np.testing.assert_array_equal(once.values, each.values)
    np.testing.assert_array_equal(once.missing, each.missing)
    np.testing.assert_array_equal(once.bad, each.bad)
    assert once.values[7] == "한국어 범주" and once.missing[97] and once.values[97] == ""
    all_text = extra is None or isinstance(extra, str)
    assert (typed_values._distinct_text(raw) is not None) == all_text


def test_a_column_with_nothing_in_it() -> None:
    raw = np.array([None] * 5000, dtype=object)
    parsed = typed_values.parse(raw, "categorical")
    assert parsed.missing.all() and (parsed.values == "").all()
