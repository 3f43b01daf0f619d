"""Untrusted model bytes are trial-loaded in a child process first (issue 10 §2): a model file
that aborts LightGBM refuses the version instead of killing the caller; refusals are marked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from castml import model_digests
from castml.spec import ProjectSpec
from serving.errors import VersionRefusedError
from serving.registry_store import served
from serving.trial_load import trial_load
from serving.version_store import LocalStore, load_version, smoke_rows
from serving.version_verdicts import TRUSTED_MARKER, Verdicts, trusted


def half_gbm_store(model_store: Path, root: Path) -> Path:
    """A store whose version 7 is version 1 with `gbm.txt` cut in half (LightGBM aborts)."""
    fresh = shutil.ignore_patterns(TRUSTED_MARKER)  # the shared store may have trusted "1"
    shutil.copytree(model_store / "1", root / "7", ignore=fresh)
    gbm = root / "7" / "model" / "gbm.txt"
    data = gbm.read_bytes()
    gbm.write_bytes(data[: len(data) // 2])
    shutil.copytree(model_store / "1", root / "1", ignore=fresh)
    return root


def test_a_model_file_that_aborts_lightgbm_refuses_the_version(
    model_store: Path, spec: ProjectSpec, tmp_path: Path
) -> None:
    store = half_gbm_store(model_store, tmp_path)
    with pytest.raises(VersionRefusedError) as refused:
        trial_load(store / "7", "7", spec.feature_names, smoke_rows(spec))
    assert refused.value.status_code == 422
    assert "crashed" in str(refused.value) and str(tmp_path) not in str(refused.value)
    assert trial_load(store / "1", "1", spec.feature_names, smoke_rows(spec)) > 0


def test_load_version_refuses_marks_and_never_loads_in_process(
    model_store: Path, spec: ProjectSpec, tmp_path: Path
) -> None:
    source = LocalStore(half_gbm_store(model_store, tmp_path))
    # Loading this in the test process would abort it: reaching the asserts proves it wasn't.
    with pytest.raises(VersionRefusedError, match="crashed"):
        load_version(source, spec, "7")
    with pytest.raises(VersionRefusedError, match="refused earlier"):
        load_version(source, spec, "7")
    assert not trusted(tmp_path / "7", served(tmp_path / "7"))
    good = load_version(source, spec, "1")
    assert good.version == "1" and (tmp_path / "1" / TRUSTED_MARKER).is_file()


def test_refusals_persist_and_digests_name_the_changed_file(
    model_store: Path, tmp_path: Path
) -> None:
    Verdicts(tmp_path).refuse("3", "version 3 is corrupt")
    assert Verdicts(tmp_path).refused("3") == "version 3 is corrupt"
    assert Verdicts(tmp_path).refused("4") is None
    store = half_gbm_store(model_store, tmp_path / "store")
    changed = model_digests.mismatches(served(store / "1"), served(store / "7"))
    assert changed == ["model/gbm.txt"]
    assert model_digests.decode(model_digests.encode(served(store / "1"))) == served(store / "1")
