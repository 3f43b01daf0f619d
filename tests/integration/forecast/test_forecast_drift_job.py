"""The drift job on a forecast project (issue 14 §4): observations, not served requests.

A real bikeshare @champion trained on 2012 and real later hours written through the
observation ingest's own code; the drift job's window ends at the newest observation (a
replay is years old), and it compares the observed columns, the demand's level among them,
with the version's reference."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from monitoring.drift_job import run_drift
from monitoring.settings import DriftSettings
from tests.integration.forecast.conftest import RegisteredForecast
from tests.support.forecast_observations import observation_rows, write_series

pytestmark = pytest.mark.integration


def _drift(home: Path, registered: RegisteredForecast, rows: list[dict[str, object]]) -> object:
    from castml import registry
    from castml.cli.model_cmd import move_champion

    # The session's first version is the one trained on 2012 (the gate may have left it
    # without an alias: the fast profile on a slice).
    move_champion(registry.client(registered.uri), "bikeshare", registered.versions[0])
    write_series(home / "logs", rows, "total")
    settings = DriftSettings.model_validate({"home": home, "mlflow_uri": registered.uri})
    return run_drift("bikeshare", "14d", settings)


def test_later_demand_drifts_against_the_2012_champion(
    registered_bikeshare: RegisteredForecast, bike_frame: pd.DataFrame, tmp_path: Path
) -> None:
    later = _drift(
        tmp_path / "2016", registered_bikeshare, observation_rows(bike_frame, "2016-07-01", 24 * 21)
    )
    assert later.status != "insufficient_data", later.reason  # type: ignore[attr-defined]
    assert later.window["end"].startswith("2016-07-21")  # type: ignore[attr-defined]
    assert later.rows["current"] == 24 * 14  # type: ignore[attr-defined]
    assert later.features["count"].drifted  # type: ignore[attr-defined]
    assert later.prediction_drift is None  # no served score for a forecast  # type: ignore[attr-defined]
    assert set(later.features) == {"tmin", "tmax", "pn", "count"}  # type: ignore[attr-defined]


def test_no_observations_is_insufficient_data(
    registered_bikeshare: RegisteredForecast, tmp_path: Path
) -> None:
    from castml import registry
    from castml.cli.model_cmd import move_champion

    move_champion(
        registry.client(registered_bikeshare.uri), "bikeshare", registered_bikeshare.versions[0]
    )
    settings = DriftSettings.model_validate(
        {"home": tmp_path, "mlflow_uri": registered_bikeshare.uri}
    )
    result = run_drift("bikeshare", "14d", settings)
    assert result.status == "insufficient_data" and result.rows["current"] == 0
