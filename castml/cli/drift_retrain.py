"""The drift job's retrain request on the CLI side: the in-process policy, and its answer shown.

`castml drift run` with no retrain endpoint configured (CASTML_DRIFT_RETRAIN_URL) files
its request with the policy in this process, wired as `castml retrain` wires it; a
started kfp.local run then finishes before the command returns.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from monitoring.retrain_filing import InProcessFiler

COLORS = {"started": "green", "skipped": "yellow"}


def in_process_filer() -> tuple[InProcessFiler, Any]:
    """(filer, launcher) over the policy `castml retrain` builds."""
    from castml.cli.retrain_cmd import build_policy

    policy, launcher = build_policy()
    return InProcessFiler(policy), launcher


def show_retrain(console: Console, answer: dict[str, Any] | None) -> None:
    """One line: what the drift job asked for and what the policy decided."""
    if answer is None:
        console.print("retrain: the spec's monitoring policy asks for none")
        return
    color = COLORS.get(answer["outcome"], "red")
    where = f" via {answer['filed_to']}" if answer.get("filed_to") else ""
    console.print(
        f"retrain ({answer['reason']}){where}: [{color}]{answer['outcome']}[/] {answer['detail']}"
    )


def wait_for_run(console: Console | None, launcher: Any, answer: dict[str, Any] | None) -> None:
    """A started local run ends before the CLI does (its thread would hold it anyway)."""
    wait = getattr(launcher, "wait", None)
    if answer and answer["outcome"] == "started" and callable(wait):
        if console is not None:
            console.print("retraining (kfp.local) ...")
        wait()
