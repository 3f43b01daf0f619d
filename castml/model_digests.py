"""sha256 digests of a model version's files: recorded at registration, checked before serving.

The served form of a version is a folder holding `model/` (the model directory inside the
pyfunc) and `background.npy` (the SHAP background). Registration records the digest of
every one of those files in the `castml.digests` version tag (`TAG_DIGESTS`), as compact
JSON `{"model/gbm.txt": "<hex>", ...}`; serving refuses a download or a cached copy whose
files differ, before any byte of it reaches LightGBM.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MODEL_PART = "model"
BACKGROUND_PART = "background.npy"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digests(root: Path, prefix: str) -> dict[str, str]:
    """Every regular file under `root`, keyed `<prefix>/<relative posix path>`."""
    return {
        f"{prefix}/{path.relative_to(root).as_posix()}": file_sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def served_digests(model_dir: Path, background: Path | None) -> dict[str, str]:
    """The digests of a version as serving lays it out: `model/...` and `background.npy`."""
    digests = tree_digests(model_dir, MODEL_PART)
    if background is not None and background.is_file():
        digests[BACKGROUND_PART] = file_sha256(background)
    return digests


def encode(digests: dict[str, str]) -> str:
    return json.dumps(dict(sorted(digests.items())), separators=(",", ":"))


def decode(text: str) -> dict[str, str]:
    """The tag's value back; ValueError when it is not a `{name: sha256 hex}` object."""
    raw = json.loads(text)
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in raw.items()
    ):
        raise ValueError("not an object of file names to sha256 digests")
    return {str(k): str(v) for k, v in raw.items()}


def mismatches(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Files that differ, are missing, or sit in `model/` without a recorded digest."""
    names = set(expected) | {name for name in actual if name.startswith(f"{MODEL_PART}/")}
    return sorted(name for name in names if expected.get(name) != actual.get(name))
