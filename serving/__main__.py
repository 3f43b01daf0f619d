"""`python -m serving predictor|transformer|explainer`, with KServe ModelServer's flags.

Flags wire the process (name, ports, where the predictor is); everything else comes
from `ServingSettings` (CASTML_* environment variables).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile

from serving.settings import serving_settings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument("role", choices=["predictor", "transformer", "explainer"])
    parser.add_argument(
        "--model_name", default=None, help="Project served (default: CASTML_PROJECT)."
    )
    parser.add_argument("--http_port", type=int, default=8080)
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
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
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

        app, _ = predictor_app(settings, grpc_port=args.grpc_port or None)
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


if __name__ == "__main__":
    main()
