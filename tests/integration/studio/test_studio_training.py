"""A real pipeline run started by POST /api/train, watched over WebSocket and REST.

The MLflow run whose id /api/train answers is the run the pipeline logged every epoch
into and registered the model from.
"""

from __future__ import annotations

import httpx
import pytest
from mlflow import MlflowClient

from tests.integration.studio.conftest import EPOCHS, FAMILY, Studio, Trained

pytestmark = pytest.mark.integration


def _epochs(messages: list[dict]) -> list[int]:
    return [m["epoch"] for m in messages if m["type"] == "epoch_update"]


def test_the_status_is_read_back_from_the_mlflow_run(
    studio: Studio, trained: Trained, mlflow_server: str
) -> None:
    status = httpx.get(f"{studio.url}/api/train/status/{trained.run_id}").json()
    assert status["status"] == "completed", status
    assert status["current_epoch"] == status["total_epochs"] == EPOCHS
    assert set(status["metrics"]) == {"train_loss", "val_loss", "train_accuracy", "val_accuracy"}
    if FAMILY == "lstm_seq":
        assert all(value is not None for value in status["metrics"].values())
    run = MlflowClient(mlflow_server).get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    history = MlflowClient(mlflow_server).get_metric_history(trained.run_id, "train_loss")
    assert [p.step for p in history] == list(range(1, EPOCHS + 1))
    assert status["metrics"]["train_loss"] == history[-1].value
    # the registered version comes from this very run
    version = MlflowClient(mlflow_server).get_model_version(
        run.data.tags["castml.studio.file_id"] and f"ctr-{trained.file_id}",
        status["model_version"],
    )
    assert version.run_id == trained.run_id


def test_the_run_is_listed(studio: Studio, trained: Trained) -> None:
    runs = httpx.get(f"{studio.url}/api/train/runs").json()
    row = next(r for r in runs if r["run_id"] == trained.run_id)
    assert row["status"] == "completed" and row["file_id"] == trained.file_id
    assert row["created_at"] and 0.0 <= row["accuracy"] <= 1.0


def test_a_client_from_the_start_sees_every_epoch_then_the_end(trained: Trained) -> None:
    assert _epochs(trained.early) == list(range(1, EPOCHS + 1))
    assert trained.early[-1]["type"] == "training_complete"
    assert trained.early[-1]["status"] == "completed"
    update = next(m for m in trained.early if m["type"] == "epoch_update")
    assert update["total_epochs"] == EPOCHS and "train_loss" in update["metrics"]
    if FAMILY == "lstm_seq":  # gbm reports its rounds' loss only
        assert set(update["metrics"]) >= {"train_loss", "val_loss", "val_accuracy"}
    logs = [m["message"] for m in trained.early if m["type"] == "log"]
    assert any("task train finished: SUCCESS" in line for line in logs)
    assert any("registered model version" in line for line in logs)


def test_a_late_client_gets_the_epochs_so_far(trained: Trained) -> None:
    assert _epochs(trained.late) == list(range(1, EPOCHS + 1))
    assert trained.late[-1]["type"] == "training_complete"
    assert trained.late[-1]["metrics"]["roc_auc"] == trained.early[-1]["metrics"]["roc_auc"]


def test_an_unknown_run_closes_the_socket_with_a_reason(studio: Studio) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"{studio.ws}/ws/training/{'0' * 32}") as socket:
        message = socket.recv(timeout=10)
        assert "unknown run_id" in str(message)
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
