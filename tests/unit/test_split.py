"""The split of a retrain on logged traffic keeps the spec's rows where a base run puts them.

Otherwise the champion, trained on the base split, would be scored on rows it was trained
on, and the gate would compare a fair candidate with an inflated champion.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from castml.data.diecast import generate
from castml.data.provenance import TAG_PREFIX, write_with_lineage
from castml.spec import load_spec
from castml.workflow import split_step


def _split(tmp: Path, frame: pd.DataFrame, lineage: dict[str, str]) -> list[pd.DataFrame]:
    data = tmp / "dataset"  # no suffix, like a KFP artifact
    write_with_lineage(frame, data, lineage)
    paths = [tmp / "train", tmp / "validation", tmp / "test"]
    split_step("diecast", data, *paths)
    return [pd.read_parquet(p) for p in paths]


def test_spec_rows_split_as_in_a_base_run_and_logged_rows_split_alike(tmp_path: Path) -> None:
    spec = load_spec("diecast")
    base = generate(2000, 11)[[*spec.feature_names, spec.target]]
    logged = generate(600, 12)[[*spec.feature_names, spec.target]]
    base_fit, base_val, base_test = _split(tmp_path / "base", base, {})
    combined = pd.concat([base, logged], ignore_index=True)
    lineage = {f"{TAG_PREFIX}spec_rows": str(len(base))}
    fit, val, test = _split(tmp_path / "combined", combined, lineage)

    def rows(frame: pd.DataFrame) -> set[tuple[float, ...]]:
        return set(map(tuple, frame.to_numpy().tolist()))

    base_rows, logged_rows = rows(base), rows(logged)
    assert rows(test) & base_rows == rows(base_test)
    assert rows(val) & base_rows == rows(base_val)
    assert rows(fit) & base_rows == rows(base_fit)
    in_test = len(rows(test) & logged_rows) / len(logged_rows)
    assert abs(in_test - spec.split.test) < 0.02
    assert len(fit) + len(val) + len(test) == len(combined)


def test_without_lineage_the_whole_frame_is_split_once(tmp_path: Path) -> None:
    spec = load_spec("diecast")
    frame = generate(1000, 13)[[*spec.feature_names, spec.target]]
    fit, val, test = _split(tmp_path, frame, {})
    assert len(test) == round(len(frame) * spec.split.test)
    assert len(fit) + len(val) + len(test) == len(frame)
