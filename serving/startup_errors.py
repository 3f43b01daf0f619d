"""Start-up errors of `python -m serving`: one line naming the cause and the fix, an exit code
per class of cause (the table is in serving/__main__.py and docs/operations.md).

Everything that can fail at start-up (the spec, the settings, the registry, the pinned
version) runs before uvicorn starts, so it ends here rather than in uvicorn's lifespan
traceback. `CASTML_DEBUG=1` re-raises, showing the traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from pydantic import ValidationError

from castml.errors import CastmlError, SpecError
from castml.web.errors import UnavailableError
from serving.errors import NotFoundError, VersionRefusedError
from serving.registry_store import ModelNotRegisteredError, RegistryConfigError

# sysexits(3) codes, so none clashes with uvicorn's own start-up failure (3).
EXIT_UNEXPECTED = 1  # a bug: report it (CASTML_DEBUG=1 shows the traceback)
EXIT_USAGE = 2  # bad command-line flags (argparse)
EXIT_VERSION_REFUSED = 65  # EX_DATAERR: the version is corrupt or fails its trial load / smoke
EXIT_NOT_FOUND = 66  # EX_NOINPUT: the registered model, the version or the alias is absent
EXIT_REGISTRY_UNAVAILABLE = 75  # EX_TEMPFAIL: MLflow unreachable, timed out or 5xx: retry
EXIT_CONFIG = 78  # EX_CONFIG: unknown project or bad spec, bad MLflow URI, invalid setting

DEBUG_ENV = "CASTML_DEBUG"

_PIN = "set CASTML_MODEL_VERSION to a version `castml model list` shows"


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line: the cause, then the fix)."""
    if isinstance(exc, SpecError):
        return EXIT_CONFIG, f"{exc}; fix: pass --model_name (CASTML_PROJECT) a bundled project"
    if isinstance(exc, RegistryConfigError):
        return EXIT_CONFIG, f"{exc}; fix: set CASTML_MLFLOW_URI to e.g. http://127.0.0.1:5000"
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return EXIT_CONFIG, f"invalid setting: {problems}; fix: the CASTML_* environment"
    if isinstance(exc, UnavailableError):
        return EXIT_REGISTRY_UNAVAILABLE, (
            f"{exc}; fix: start MLflow (castml mlflow up) or correct CASTML_MLFLOW_URI; "
            "a cached version pinned by number (CASTML_MODEL_VERSION=<n>) starts without it"
        )
    if isinstance(exc, ModelNotRegisteredError):
        return EXIT_NOT_FOUND, (
            f"{exc}; fix: train and register it (castml pipeline run --project <name>), "
            "or point CASTML_MLFLOW_URI at the registry that has it"
        )
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND, f"{exc}; fix: {_PIN}, or promote one (castml model promote)"
    if isinstance(exc, VersionRefusedError):
        return EXIT_VERSION_REFUSED, (
            f"{exc}; fix: move @champion to a good version (castml model rollback), or {_PIN}"
        )
    if isinstance(exc, CastmlError):
        return EXIT_CONFIG, str(exc)
    return EXIT_UNEXPECTED, (
        f"unexpected {type(exc).__name__}: {exc}; this is a bug: rerun with {DEBUG_ENV}=1 "
        "and report the traceback"
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


def run_or_exit(main: Callable[[], None]) -> None:
    """Run `main`; a start-up error prints `error: <cause>; fix: <fix>` and exits with its code."""
    try:
        main()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        # Read directly, not through settings: it must work when the settings are the error.
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        code, message = classify(exc)
        print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
        sys.exit(code)
