"""`castml drift run --project diecast --window 1d`: Evidently over the champion's window."""

from __future__ import annotations

from typing import Annotated

import typer

from castml.cli.console import console

app = typer.Typer(no_args_is_help=True)


@app.command("run")
def run(
    project: Annotated[
        str, typer.Option(help="Project whose @champion traffic is checked.")
    ] = "diecast",
    window: Annotated[str, typer.Option(help="Window ending now: 30m, 12h, 1d, 2w.")] = "1d",
    json_out: Annotated[bool, typer.Option("--json", help="Print the JSON result only.")] = False,
) -> None:
    """Compare the window with the reference logged with the champion; log to MLflow."""
    import orjson  # not in the pipelines image; only this command needs it

    from castml.cli.drift_retrain import in_process_filer, show_retrain, wait_for_run
    from monitoring.drift_job import run_drift
    from monitoring.settings import DriftSettings, from_env

    settings = from_env(DriftSettings)
    filer, launcher = (None, None) if settings.drift_retrain_url else in_process_filer()
    result = run_drift(project, window, settings, filer=filer)
    if json_out:
        print(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
        wait_for_run(None, launcher, result.retrain)
        return
    console.print(
        f"[bold]{project}[/] v{result.model_version}, window {window}: "
        f"{result.rows['current']} rows ({result.rows.get('labeled', 0)} labeled)"
    )
    if result.status != "ok":
        console.print(f"[yellow]insufficient data[/]: {result.reason}")
    else:
        flag = "[red]DRIFT[/]" if result.dataset_drift else "[green]no drift[/]"
        console.print(f"{flag}: share of drifted features {result.drift_share:.2f}")
        drifted = [n for n, f in result.features.items() if f.drifted]
        if drifted:
            console.print("drifted: " + ", ".join(drifted))
        if result.prediction_drift is not None:
            console.print(
                f"prediction drift score {result.prediction_drift.score:.3g} "
                f"({'drifted' if result.prediction_drift.drifted else 'stable'})"
            )
        if result.performance:
            console.print(
                "realised: " + ", ".join(f"{k}={v:.3f}" for k, v in result.performance.items())
            )
        console.print(f"report: {result.report_uri}")
    console.print(
        f"MLflow run: {settings.tracking_uri}/#/experiments/?searchFilter={result.mlflow_run_id}"
    )
    show_retrain(console, result.retrain)
    wait_for_run(console, launcher, result.retrain)
