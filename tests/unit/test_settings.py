"""The one settings loader: environment, then the CLI's wiring, validated alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from castml.settings import PlatformSettings, load_settings
from monitoring.settings import CollectorSettings, DriftSettings, RetrainSettings, from_env
from serving.settings import RolloutSettings


def test_wiring_overrides_are_validated_like_the_environment() -> None:
    with pytest.raises(ValidationError, match="collector_port"):
        from_env(CollectorSettings, collector_port="not-a-port")
    assert from_env(CollectorSettings, collector_port="8123").collector_port == 8123


def test_wiring_beats_the_environment_and_none_leaves_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CASTML_COLLECTOR_PORT", "8111")
    assert load_settings(CollectorSettings, collector_port=8222).collector_port == 8222
    assert load_settings(CollectorSettings, collector_port=None).collector_port == 8111


def test_no_two_deployables_default_to_one_port(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CASTML_COLLECTOR_PORT", "CASTML_ROLLOUT_PORT", "CASTML_RETRAIN_PORT"):
        monkeypatch.delenv(name, raising=False)
    ports = [
        CollectorSettings().collector_port,
        RolloutSettings().rollout_port,
        RetrainSettings().retrain_port,
        PlatformSettings().mlflow_port,
    ]
    assert len(set(ports)) == len(ports), ports


def test_every_deployable_reads_the_payload_log_from_one_place(tmp_path: Path) -> None:
    wanted = tmp_path.resolve() / "logs"
    for cls in (PlatformSettings, CollectorSettings, DriftSettings, RetrainSettings):
        assert load_settings(cls, home=tmp_path).logs_dir == wanted
