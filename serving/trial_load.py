"""Trial-load a version in a child process before the serving process touches it.

LightGBM 4.7 aborts the whole process (SIGABRT from C++ `terminate`) on some corrupt
model files, e.g. a `gbm.txt` cut in half; no Python `except` can catch that. So a
version's bytes are first loaded and smoke-predicted by `python -m serving.trial_load`
in a child: a crash, a hang past the timeout, an error or a bad prediction there refuses
the version, and the serving process never loads it. The child imports only numpy and
LightGBM (lean, see serving.lightgbm_import); it costs one interpreter start and one
model load, off the request path (loads run in a worker thread) and once per version
(a passing folder is remembered, see serving.version_verdicts).

Protocol: the parent writes `{"folder", "features", "rows"}` as JSON to the child's
stdin; the child writes `{"ok": true}` or `{"error": "..."}` to the file named by its
one argument (LightGBM prints to stdout, so stdout is no channel).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from serving.errors import VersionRefusedError

DEFAULT_TIMEOUT_S = 60.0
_SOURCE_ROOT = str(Path(__file__).resolve().parents[1])  # where `serving` imports from


def trial_load(
    folder: Path,
    version: str,
    features: list[str],
    rows: np.ndarray,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> float:
    """Load and smoke-predict `folder` in a child; seconds it took. Refuses with 422."""
    started = time.perf_counter()
    request = json.dumps({"folder": str(folder), "features": features, "rows": rows.tolist()})
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [_SOURCE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryDirectory(prefix="castml-trial-") as tmp:
        verdict = Path(tmp) / "verdict.json"
        try:
            child = subprocess.run(
                [sys.executable, "-m", "serving.trial_load", str(verdict)],
                input=request.encode(),
                capture_output=True,
                timeout=timeout_s,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise VersionRefusedError(
                f"version {version} did not load within {timeout_s:.0f} s in a trial process"
            ) from exc
        answer = _read(verdict)
    if child.returncode < 0:
        name = signal.Signals(-child.returncode).name
        raise VersionRefusedError(
            f"version {version} crashed the trial process that loaded it ({name}): "
            "its model file is corrupt"
        )
    if child.returncode != 0 or not answer.get("ok"):
        reason = answer.get("error") or f"the trial process exited with {child.returncode}"
        raise VersionRefusedError(f"version {version} failed to load: {reason}")
    return time.perf_counter() - started


def _read(verdict: Path) -> dict[str, object]:
    try:
        loaded = json.loads(verdict.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _child(verdict: Path) -> int:
    """In the child: load, check the features, predict the smoke rows; write the verdict."""
    request = json.loads(sys.stdin.read())
    folder = Path(request["folder"])
    try:
        from serving.lightgbm_import import import_lightgbm_without_extras

        import_lightgbm_without_extras()
        from castml.runtime.loaded_model import load_model

        model = load_model(folder / "model")
        if model.features != request["features"]:
            raise ValueError("it expects other features than the spec")
        rows = np.asarray(request["rows"], dtype=np.float32)
        out = model.predict(rows)
        for name, values in out.items():
            if values.shape[0] != len(rows) or not np.isfinite(values).all():
                raise ValueError(f"its smoke prediction gave a bad '{name}'")
        background = folder / "background.npy"
        if background.is_file():
            shape = np.load(background, allow_pickle=False).shape
            if shape[1:] != (rows.shape[1],):
                raise ValueError(f"its background has shape {list(shape)}")
    except Exception as exc:  # any failure is the version's; no internal paths in the reason
        reason = f"{type(exc).__name__}: {exc}".replace(str(folder), "<version>")
        verdict.write_text(json.dumps({"error": reason[:300]}))
        return 1
    verdict.write_text(json.dumps({"ok": True}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(Path(sys.argv[1])))
