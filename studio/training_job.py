"""One studio training: the compiled training pipeline through kfp.local, in its own process.

`python -m studio.training_job --spec S --data D --run-id R ...` is what `POST /api/train`
starts. A process per run because kfp.local's configuration and its capture of stdout are
process-wide: two runs in one process would mix. The MLflow run `R` exists already (the
studio created it to answer with its id); the pipeline's train step logs each epoch into
it and the register step logs the model into it and ends it. When the pipeline fails, this
process marks the run FAILED with the reason (tag `castml.studio.failure`).

Progress goes to `<run dir>/events.jsonl` as `log` lines the WebSocket relays.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

FAILURE_TAG = "castml.studio.failure"
VERSION_TAG = "castml.studio.model_version"
EVENTS_FILE = "events.jsonl"


def append_event(run_dir: Path, message: str) -> None:
    line = json.dumps({"message": message, "timestamp": time.time()})
    with (run_dir / EVENTS_FILE).open("a") as events:
        events.write(line + "\n")


class StoppedError(Exception):
    """SIGTERM (the studio shutting down): the run ends FAILED, saying so."""


def _stop(signum: int, _: Any) -> None:
    raise StoppedError(f"the training was stopped (signal {signum}: the studio shut down)")


def run(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from pipelines.runner import ANSI, run_local

    run_dir = Path(args.run_dir)
    client = MlflowClient(args.tracking_uri)

    def progress(event: str, detail: dict[str, Any]) -> None:
        if event == "task":
            append_event(run_dir, f"task {detail['task']} finished: {detail['status']}")

    signal.signal(signal.SIGTERM, _stop)
    append_event(run_dir, "pipeline started: validate -> split -> train -> evaluate -> register")
    try:
        output = run_local(
            args.spec,
            args.tracking_uri,
            run_dir / "kfp",
            params_override=args.params_override,
            data_path=args.data,
            mlflow_run_id=args.run_id,
            on_progress=progress,
        ).version
    except Exception as exc:  # any failure ends the run FAILED with its reason
        text = ANSI.sub("", str(exc))
        reason = text.splitlines()[0][:4000] if text else type(exc).__name__
        append_event(run_dir, f"training failed: {reason}")
        client.set_tag(args.run_id, FAILURE_TAG, reason)
        client.set_terminated(args.run_id, "FAILED")
        return 1
    client.set_tag(args.run_id, VERSION_TAG, str(int(output)))
    append_event(run_dir, f"registered model version {int(output)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.training_job")
    parser.add_argument("--spec", required=True, help="The draft spec's path.")
    parser.add_argument("--data", required=True, help="The uploaded CSV.")
    parser.add_argument("--run-id", required=True, help="The MLflow run to log into.")
    parser.add_argument("--run-dir", required=True, help="This run's studio folder.")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--params-override", default="")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
