"""`WS /ws/training/{run_id}`: a run's epochs and progress lines as they land.

One feed per run polls the run's MLflow metrics (where the pipeline logs each epoch) and
its progress file, keeps every message sent so far, and fans new ones out to each
client's queue. A client that connects late gets the messages so far, then the live
ones; the snapshot and the subscription are taken with no await between them, so no
message falls in a gap. The feed ends after `training_complete` once no client listens.
Training runs in its own process: a client that disconnects only leaves the fan-out.

Messages (JSON):
- `{"type": "epoch_update", "run_id", "epoch", "total_epochs", "metrics": {train_loss,
  val_loss, train_accuracy, val_accuracy}}`
- `{"type": "log", "run_id", "message", "timestamp"}`
- `{"type": "training_complete", "run_id", "status": "completed" | "failed", "reason",
  "metrics": {roc_auc, accuracy, precision, recall, f1}, "model_version"}`
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from castml.errors import CastmlError
from studio.training_runs import TrainingRuns

log = logging.getLogger("studio.training_ws")


@dataclass
class RunFeed:
    run_id: str
    runs: TrainingRuns
    poll_s: float
    sent: list[dict[str, Any]] = field(default_factory=list)
    listeners: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    done: bool = False
    task: asyncio.Task[None] | None = None

    def subscribe(self) -> tuple[list[dict[str, Any]], asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.listeners.add(queue)
        return list(self.sent), queue

    def _publish(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        for queue in self.listeners:
            queue.put_nowait(message)

    async def run(self) -> None:
        epochs_seen, offset = 0, 0
        while True:
            status, epochs = await asyncio.to_thread(self.runs.progress, self.run_id)
            lines, offset = await asyncio.to_thread(self.runs.events, self.run_id, offset)
            for line in lines:
                self._publish({"type": "log", "run_id": self.run_id, **line})
            for epoch in epochs[epochs_seen:]:
                self._publish({"type": "epoch_update", "run_id": self.run_id, **epoch})
            epochs_seen = max(epochs_seen, len(epochs))
            if status["status"] != "training":
                # one more read: epochs logged just before the run ended
                self._publish(
                    {
                        "type": "training_complete",
                        "run_id": self.run_id,
                        "status": status["status"],
                        "reason": status.get("reason"),
                        "metrics": status.get("evaluation", {}),
                        "model_version": status.get("model_version"),
                    }
                )
                self.done = True
                return
            await asyncio.sleep(self.poll_s)


@dataclass
class FeedHub:
    runs: TrainingRuns
    poll_s: float
    feeds: dict[str, RunFeed] = field(default_factory=dict)

    def feed(self, run_id: str) -> RunFeed:
        self.runs.record(run_id)  # 404 for a run the studio does not know
        feed = self.feeds.get(run_id)
        if feed is None:
            feed = RunFeed(run_id, self.runs, self.poll_s)
            feed.task = asyncio.create_task(self._guarded(feed))
            self.feeds[run_id] = feed
        return feed

    async def _guarded(self, feed: RunFeed) -> None:
        try:
            await feed.run()
        except Exception as exc:  # MLflow down: the clients hear why, a later one retries
            log.warning("training feed of %s stopped: %s", feed.run_id, exc)
            feed._publish({"type": "log", "run_id": feed.run_id, "message": f"feed error: {exc}"})
            self.feeds.pop(feed.run_id, None)
            for queue in feed.listeners:
                queue.put_nowait({"type": "feed_closed", "run_id": feed.run_id})

    def release(self, feed: RunFeed, queue: asyncio.Queue[dict[str, Any]]) -> None:
        feed.listeners.discard(queue)

    async def close(self) -> None:
        for feed in self.feeds.values():
            if feed.task is not None:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feed.task


async def training_socket(websocket: WebSocket, hub: FeedHub, run_id: str) -> None:
    await websocket.accept()
    try:
        feed = hub.feed(run_id)
    except CastmlError as exc:
        await websocket.send_json({"type": "error", "error": str(exc)})
        await websocket.close(code=4404)
        return
    backlog, queue = feed.subscribe()
    try:
        for message in backlog:
            await websocket.send_json(message)
            if message["type"] == "training_complete":
                await websocket.close()
                return
        while True:
            message = await queue.get()
            if message["type"] == "feed_closed":
                await websocket.close(code=1011)
                return
            await websocket.send_json(message)
            if message["type"] == "training_complete":
                await websocket.close()
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client left: training goes on, only this fan-out ends
    finally:
        hub.release(feed, queue)
        if feed.done and not feed.listeners:
            hub.feeds.pop(run_id, None)
