"""Session fixtures of the forecast serving tests: a real bikeshare version, trained once on a
slice of the real data (the spec's fast profile) and registered in the session's MLflow
(twice: versions 1 and 2), the same files as a local model store, and a real redis-server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from castml.redis_embedded import EmbeddedRedis
from tests.support.redis_server import redis_server

TRAIN_FROM, TRAIN_TO = "2012-05-01", "2012-12-31 23:00"


@pytest.fixture(scope="session")
def bike_frame() -> pd.DataFrame:
    """The real Capital Bikeshare hours (ts as datetime64), as the spec loads them."""
    from castml.data.loaders import load_dataset
    from castml.spec import load_spec

    frame = load_dataset(load_spec("bikeshare"))
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame


@dataclass(frozen=True)
class RegisteredForecast:
    uri: str
    versions: list[int]  # 1 is @champion, 2 (the same files) @challenger
    workdir: Path  # run_direct's files: model/ is version 1's model directory


@pytest.fixture(scope="session")
def registered_bikeshare(
    mlflow_server: str, bike_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> RegisteredForecast:
    """A real bikeshare version trained on 2012 (fast profile) through the pipeline's steps,
    then registered a second time by the register step (two versions, one training)."""
    from castml.workflow import register_step, run_direct

    work = tmp_path_factory.mktemp("bikeshare-2012")
    data = bike_frame[(bike_frame.ts >= TRAIN_FROM) & (bike_frame.ts <= TRAIN_TO)].copy()
    data["ts"] = data["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    data.to_parquet(work / "slice.parquet", index=False)
    first = run_direct(
        "bikeshare",
        mlflow_server,
        work,
        profile="fast",
        data_path=str(work / "slice.parquet"),
        run_id="forecast-serving",
    )
    second = register_step(
        "bikeshare",
        work / "model",
        work / "train.parquet",
        work / "evaluation.json",
        work / "report.html",
        "forecast-serving-copy",
        "forecast-serving-2",
        "manual",
        mlflow_server,
        "fast",
    )
    return RegisteredForecast(mlflow_server, [first.version, second.version], work)


@pytest.fixture(scope="session")
def forecast_store(
    registered_bikeshare: RegisteredForecast, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """`<store>/1/model` and `2/model` (the registered model's files) with `aliases.json`."""
    store = tmp_path_factory.mktemp("forecast-store")
    for version in ("1", "2"):
        shutil.copytree(registered_bikeshare.workdir / "model", store / version / "model")
    (store / "aliases.json").write_text(json.dumps({"champion": "1"}))
    return store


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with redis_server(tmp_path / "redis") as server:
        yield server
