"""Where versions come from, and how one becomes the served model.

A version is pinned once: an alias (`champion`) is resolved to a number at load time
and never followed implicitly afterwards; only an explicit load switches versions.
Registry versions are cached on disk (serving.registry_store), so a restart with a
cached version needs no download, no `mlflow` import and no MLflow.

Untrusted bytes never reach LightGBM in this process first (issue 10 §2): a version's
files are checked against their digests, then trial-loaded in a child process
(serving.trial_load); only then are they loaded here.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from castml.runtime.loaded_model import LoadedModel, load_model
from castml.spec import ProjectSpec
from serving import version_verdicts
from serving.errors import NotFoundError, VersionRefusedError
from serving.registry_store import (
    BACKGROUND_FILE,
    COMPLETE_MARKER,
    MODEL_SUBDIR,
    RegistryStore,
    served,
)
from serving.trial_load import DEFAULT_TIMEOUT_S, trial_load
from serving.version_verdicts import Verdicts

__all__ = [
    "BACKGROUND_FILE",
    "COMPLETE_MARKER",
    "MODEL_SUBDIR",
    "LocalStore",
    "RegistryStore",
    "ServedModel",
    "VersionSource",
    "load_version",
    "prepare_version",
    "smoke_rows",
]

log = logging.getLogger("serving")
ALIASES_FILE = "aliases.json"


@dataclass(frozen=True)
class ServedModel:
    """One loaded version. Immutable: a switch replaces the whole object."""

    project: str
    version: str
    model: LoadedModel
    background: np.ndarray | None
    loaded_at: float

    @property
    def label(self) -> str:
        return f"{self.project}/{self.version}"


class VersionSource(Protocol):
    verdicts: Verdicts

    def resolve(self, ref: str) -> str:
        """A concrete version number for `ref` (a number or an alias)."""

    def fetch(self, version: str) -> Path:
        """A local folder holding `model/` and, when logged, `background.npy`."""


class LocalStore:
    """`<root>/<version>/model`; aliases, when used, in `<root>/aliases.json`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.verdicts = Verdicts(None)  # refusals in memory: the store may be read-only

    def resolve(self, ref: str) -> str:
        ref = ref.lstrip("@")
        if ref.isascii() and ref.isdigit():
            return ref
        aliases_path = self.root / ALIASES_FILE
        aliases: dict[str, str] = (
            json.loads(aliases_path.read_text()) if aliases_path.is_file() else {}
        )
        if ref not in aliases:
            raise NotFoundError(f"no alias @{ref} in the local model store")
        return str(aliases[ref])

    def fetch(self, version: str) -> Path:
        folder = self.root / version
        if not (folder / MODEL_SUBDIR).is_dir():
            raise NotFoundError(f"no version {version} in the local model store")
        return folder


def smoke_rows(spec: ProjectSpec) -> np.ndarray:
    """Rows in the middle of each feature's normal range (or bounds): a prediction must work."""
    mid = [
        (f.normal[0] + f.normal[1]) / 2 if f.normal else (f.bounds[0] + f.bounds[1]) / 2
        for f in spec.features
    ]
    return np.asarray([mid, mid], dtype=np.float32)


def prepare_version(
    source: VersionSource, spec: ProjectSpec, ref: str, trial_timeout_s: float = DEFAULT_TIMEOUT_S
) -> tuple[str, Path]:
    """Resolve and fetch `ref`, then make sure its bytes are safe to load in this process.

    Refused before: 422 at once. Otherwise the folder (digest-checked by the source) is
    trial-loaded in a child process unless these very files passed one before
    (serving.version_verdicts). A refusal is marked, so no one retries it in a loop.
    """
    version = source.resolve(ref)
    earlier = source.verdicts.refused(version)
    if earlier is not None:
        raise VersionRefusedError(f"{earlier} (refused earlier; not tried again)")
    try:
        folder = source.fetch(version)
        digests = served(folder)
        if not version_verdicts.trusted(folder, digests):
            seconds = trial_load(
                folder, version, spec.feature_names, smoke_rows(spec), trial_timeout_s
            )
            log.warning("version %s passed its trial load in %.2f s", version, seconds)
            version_verdicts.trust(folder, digests)
    except VersionRefusedError as exc:
        source.verdicts.refuse(version, str(exc))
        raise
    return version, folder


def load_version(source: VersionSource, spec: ProjectSpec, ref: str) -> ServedModel:
    """Prepare (resolve, fetch, verify, trial-load), then load and smoke-test in process."""
    version, folder = prepare_version(source, spec, ref)
    try:
        model = load_model(folder / MODEL_SUBDIR)
        background_path = folder / BACKGROUND_FILE
        background = (
            np.ascontiguousarray(np.load(background_path), dtype=np.float32)
            if background_path.is_file()
            else None
        )
    except Exception as exc:  # it passed a trial; a failure here is still the version's
        raise VersionRefusedError(
            f"version {version} failed to load: {type(exc).__name__}"
        ) from exc
    _smoke_test(model, spec, version, background)
    return ServedModel(spec.name, version, model, background, time.time())


def _smoke_test(
    model: LoadedModel, spec: ProjectSpec, version: str, background: np.ndarray | None
) -> None:
    if model.features != spec.feature_names:
        raise VersionRefusedError(
            f"version {version} expects other features than the '{spec.name}' spec"
        )
    if background is not None and background.shape[1:] != (len(spec.features),):
        raise VersionRefusedError(
            f"version {version}: background has shape {list(background.shape)}"
        )
    rows = smoke_rows(spec)
    try:
        out = model.predict(rows)
    except Exception as exc:
        raise VersionRefusedError(f"version {version} failed its smoke prediction: {exc}") from exc
    for name, values in out.items():
        if values.shape[0] != len(rows) or not np.isfinite(values).all():
            raise VersionRefusedError(
                f"version {version} failed its smoke prediction: bad '{name}'"
            )
