"""`python -m monitoring collector --port N`: the collector as a bare process (used by tests
and the container image; `castml collector run` is the same through the CLI)."""

from __future__ import annotations

import argparse
import importlib
import sys

from castml.errors import CastmlError
from monitoring.settings import CollectorSettings, from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("collector", help="Run the payload collector.")
    run.add_argument("--host", default=None)
    run.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    settings = from_env(CollectorSettings, collector_host=args.host, collector_port=args.port)
    from monitoring.collector_app import serve

    try:
        # The chart runs this entry point with CASTML_RETRAIN_TOKEN set: the retrain
        # endpoint then shares the collector's port. Its launcher needs `pipelines`,
        # which only the CLI layer may import: resolved at run time, by name.
        wiring = importlib.import_module("castml.cli.collector_cmd")
        serve(settings, wiring.retrain_mount())
    except CastmlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
