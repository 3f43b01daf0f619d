"""`castml serve ...`: run the predictor, transformer or explainer (KServe v2) on loopback.

Configuration comes from CASTML_* (serving.settings.ServingSettings); the options here
only wire processes together, like KServe's ModelServer flags.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


def _run(
    role: str,
    model_name: str | None,
    http_port: int,
    grpc_port: int,
    predictor_host: str | None,
    predictor_protocol: str | None = None,
) -> None:
    from serving.__main__ import main

    argv = [role, "--http_port", str(http_port)]
    if model_name:
        argv += ["--model_name", model_name]
    if grpc_port:
        argv += ["--grpc_port", str(grpc_port)]
    if predictor_host:
        argv += ["--predictor_host", predictor_host]
    if predictor_protocol:
        argv += ["--predictor_protocol", predictor_protocol]
    main(argv)


@app.command()
def predictor(
    model_name: str = typer.Option(None, help="Project (default CASTML_PROJECT, diecast)."),
    http_port: int = typer.Option(8080, help="v2 REST port."),
    grpc_port: int = typer.Option(8081, help="v2 gRPC port; 0 disables gRPC."),
) -> None:
    """The v2 predictor, pinned to CASTML_MODEL_VERSION (an alias resolves once, at start)."""
    _run("predictor", model_name, http_port, grpc_port, None)


@app.command()
def transformer(
    model_name: str = typer.Option(None, help="Project (default CASTML_PROJECT, diecast)."),
    http_port: int = typer.Option(8082, help="Public REST port."),
    predictor_host: str = typer.Option(
        "127.0.0.1:8080", help="host:port of the predictor (its gRPC port with grpc-v2)."
    ),
    predictor_protocol: str = typer.Option(
        None,
        help="v2 (REST) or grpc-v2 (default: CASTML_PREDICTOR_PROTOCOL, v2).",
    ),
) -> None:
    """The public endpoint: validates named features, calls the predictor over v2 or gRPC."""
    _run("transformer", model_name, http_port, 0, predictor_host, predictor_protocol)


@app.command()
def explainer(
    model_name: str = typer.Option(None, help="Project (default CASTML_PROJECT, diecast)."),
    http_port: int = typer.Option(8083, help="REST port."),
    predictor_host: str = typer.Option(
        "127.0.0.1:8080", help="host:port of the predictor it follows."
    ),
) -> None:
    """SHAP explanations of the version the predictor serves."""
    _run("explainer", model_name, http_port, 0, predictor_host)


@app.command()
def demo() -> None:
    """Start all three on 127.0.0.1, predict, explain, and switch @champion under traffic."""
    from castml.cli.serving_demo import run_serving_demo
    from castml.settings import PlatformSettings

    settings = PlatformSettings()
    run_serving_demo(settings.tracking_uri, "diecast", settings.home)
