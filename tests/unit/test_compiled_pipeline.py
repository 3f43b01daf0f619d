"""The checked-in compiled pipeline is what the code compiles to (`make compile` regenerates)."""

from pathlib import Path

import yaml

from pipelines.runner import COMPILED_DIR, compile_all


def test_compiled_yaml_is_up_to_date(tmp_path: Path) -> None:
    fresh = compile_all(tmp_path)
    for path in fresh:
        checked_in = COMPILED_DIR / path.name
        assert checked_in.exists(), f"{checked_in} missing: run `make compile`"
        assert path.read_text() == checked_in.read_text(), (
            f"{checked_in} is stale: run `make compile`"
        )


def test_pipeline_chains_the_five_steps_with_typed_artifacts() -> None:
    spec = yaml.safe_load((COMPILED_DIR / "training.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"validate", "split", "train", "evaluate", "register"}
    assert tasks["register"]["dependentTasks"] == sorted(
        ["evaluate", "split", "train", "validate"]
    ) or set(tasks["register"]["dependentTasks"]) == {"evaluate", "split", "train", "validate"}
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert (
        outputs["classification"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"
    )
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    model = spec["components"]["comp-train"]["outputDefinitions"]["artifacts"]["model"]
    assert model["artifactType"]["schemaTitle"] == "system.Model"
