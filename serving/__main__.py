"""`python -m serving predictor|transformer|explainer|knowledge|forecast|forecast-job`, with
KServe ModelServer's flags.

Flags wire the process (name, ports, where the predictor is); everything else comes
from `ServingSettings` (CASTML_* environment variables).

The predictor resolves, fetches, verifies and loads its version before uvicorn starts,
so a start-up problem prints one line, `error: <cause>; fix: <fix>`, and exits with a
code per class of cause (serving.startup_errors; CASTML_DEBUG=1 shows the traceback):

   1  unexpected error (a bug)
   2  bad command-line flags
  65  the version is refused: corrupt, or fails its trial load or smoke prediction
  66  not found: the registered model, the version or the alias does not exist
  75  MLflow unreachable, timed out or 5xx (retry later; a cached version pinned by
      number starts without MLflow)
  78  configuration: unknown project or bad spec, bad MLflow URI, invalid CASTML_* setting

A predictor whose pinned version (e.g. @champion) is refused exits with 65; it does not
fall back to another version, so what serves is always what was asked for. In a cluster
the old pods keep serving while the new ones fail; the reconciler reports the refusal.

The knowledge role (serving.knowledge) serves `<project>-kb` (--model_name may be either
name): it pins and loads its index version the same way before uvicorn starts, with the
same exit codes (65: the index does not match its manifest or its version's corpus hash).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile

from serving.settings import ServingSettings, serving_settings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "role",
        choices=["predictor", "transformer", "explainer", "knowledge", "forecast", "forecast-job"],
    )
    parser.add_argument(
        "--model_name", default=None, help="Project served (default: CASTML_PROJECT)."
    )
    parser.add_argument(
        "--http_port",
        type=int,
        default=None,
        help="HTTP port (default: 8080, KServe's; the forecast endpoint: CASTML_FORECAST_PORT).",
    )
    parser.add_argument("--grpc_port", type=int, default=0, help="Predictor gRPC port; 0: no gRPC.")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--predictor_host", default=None, help="host:port of the predictor.")
    parser.add_argument(
        "--predictor_protocol",
        default=None,
        choices=["v2", "grpc-v2"],
        help="How the transformer calls the predictor: v2 REST, or grpc-v2 with --predictor_host "
        "at the predictor's gRPC port (default: CASTML_PREDICTOR_PROTOCOL, v2).",
    )
    parser.add_argument(
        "--host", default=None, help="Bind address (default CASTML_HOST, 127.0.0.1)."
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    from serving.startup_errors import run_or_exit

    run_or_exit(lambda: _start(args))


def _start(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.role in ("forecast", "forecast-job"):  # issue 14: serving.forecast_main
        _start_forecast(args)
        return
    if args.http_port is None:
        args.http_port = 8080  # KServe's default port for a model server
    overrides: dict[str, object] = {}
    if args.model_name:
        overrides["project"] = args.model_name
    if args.host:
        overrides["host"] = args.host
    if args.predictor_host:
        host = args.predictor_host
        overrides["predictor_url"] = host if "://" in host else f"http://{host}"
    if args.predictor_protocol:
        overrides["predictor_protocol"] = args.predictor_protocol
    settings = serving_settings(**overrides)
    if args.role == "predictor":
        from serving.lightgbm_import import import_lightgbm_without_extras

        import_lightgbm_without_extras()  # before anything imports lightgbm
    from serving.server import serve

    if args.role == "predictor":
        if args.workers > 1:
            from serving.worker_pin import PIN_DIR_ENV, WORKERS_ENV

            # Pin once, here, before any worker starts: the workers load this number (from
            # the verified, trial-loaded cache), and a registry problem is one line.
            os.environ["CASTML_MODEL_VERSION"] = _prepare(settings)
            os.environ["CASTML_PROJECT"] = settings.project
            os.environ["CASTML_GRPC_PORT"] = str(args.grpc_port)
            os.environ[WORKERS_ENV] = str(args.workers)
            factory = "serving.lightgbm_import:predictor_from_env"
            # The workers' shared pin (serving/pin.py) lives as long as this server.
            with tempfile.TemporaryDirectory(prefix="castml-pin-") as pin_dir:
                os.environ[PIN_DIR_ENV] = pin_dir
                serve(factory, settings.host, args.http_port, args.workers)
            return
        from serving.server import predictor_app

        app, core = predictor_app(settings, grpc_port=args.grpc_port or None)
        core.slot.load_blocking(settings.model_version)  # before uvicorn: errors are one line
    elif args.role == "knowledge":
        from serving.knowledge import knowledge_app

        app, knowledge = knowledge_app(settings)
        knowledge.slot.load_blocking(settings.model_version)  # before uvicorn: one-line errors
    elif args.role == "transformer":
        from serving.transformer import transformer_app

        app = transformer_app(settings)
    else:
        if args.predictor_protocol == "grpc-v2":
            raise SystemExit(
                "the explainer follows the predictor over v2 REST; use --predictor_protocol v2"
            )
        from serving.explainer import explainer_app

        app = explainer_app(settings)
    serve(app, settings.host, args.http_port, 1)


def _start_forecast(args: argparse.Namespace) -> None:
    """The forecast read endpoint (`forecast`), or one run of the forecast job (`forecast-job`:
    exit 0, 69 Redis down, or the codes above)."""
    from serving.forecast_main import run_forecast_job, serve_forecast
    from serving.settings import forecast_settings

    overrides: dict[str, object] = {}
    if args.model_name:
        overrides["forecast_project"] = args.model_name
    if args.host:
        overrides["forecast_host"] = args.host
    settings = forecast_settings(**overrides)
    if args.role == "forecast-job":
        run_forecast_job(settings)
    else:
        port = args.http_port if args.http_port is not None else settings.forecast_port
        serve_forecast(settings, port)


def _prepare(settings: ServingSettings) -> str:
    from serving.server import version_source
    from serving.version_store import prepare_version, startup_spec

    # Bundled, or (a project trained from a spec path) the spec its version carries.
    spec = startup_spec(
        settings.project, settings.model_version, lambda n: version_source(settings, n)
    )
    version, _ = prepare_version(version_source(settings, spec.name), spec, settings.model_version)
    return version


if __name__ == "__main__":
    main()
