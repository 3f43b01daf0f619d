"""Import LightGBM without its optional scikit-learn and pandas integrations.

`lightgbm.compat` imports scikit-learn (and with it scipy) and pandas (and pyarrow)
whenever they are installed: about 120 MB of RSS and a second of start-up in a predictor
that only ever hands LightGBM numpy arrays. For the import of lightgbm alone those
packages are made unimportable; afterwards they import normally again (mlflow, which a
registry download uses, needs pandas), while lightgbm keeps its numpy-only view.

Only the predictor's process entry points call this: a process that trains, or gives
LightGBM DataFrames, must let lightgbm see them, so this is never done on import.
"""

from __future__ import annotations

import importlib
import sys

from castml.web.asgi import App  # no lightgbm behind it

OPTIONAL = ("sklearn", "pandas")


def import_lightgbm_without_extras() -> None:
    if "lightgbm" in sys.modules:
        return
    blocked = [name for name in OPTIONAL if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
    try:
        importlib.import_module("lightgbm")
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def predictor_from_env() -> App:
    """uvicorn factory for `--workers > 1`: each worker imports LightGBM lean, then builds."""
    import_lightgbm_without_extras()
    from serving.server import predictor_from_env as build

    return build()
