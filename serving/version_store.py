"""Where versions come from, and how one becomes the served model.

A version is pinned once: an alias (`champion`) is resolved to a number at load time
and never followed implicitly afterwards; only an explicit load switches versions.
Registry versions are cached on disk (serving.registry_store), so a restart with a
cached version needs no download, no `mlflow` import and no MLflow.

Untrusted bytes never reach LightGBM in this process first (issue 10 §2): a version's
files are checked against their digests, then trial-loaded in a child process
(serving.trial_load); only then are they loaded here.

The served version's own spec and encoding (`spec.yaml`, `encoding.json` in its model
folder, DESIGN §4) say what it takes; the spec bundled with the package only names the
project (and serves versions written before the spec travelled with them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from castml.data.tabular_encoding import EncodingState
from castml.errors import CastmlError, SpecError
from castml.runtime.loaded_model import LoadedModel, load_model
from castml.runtime.model_bundle import SPEC_FILE, has_encoding, read_encoding, read_spec
from castml.spec import ProjectSpec, load_spec
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
    "startup_spec",
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
    spec: ProjectSpec  # the version's own (the bundled one for versions that carry none)
    encoding: EncodingState | None = None
    # Set once at load, read per request (the spec's properties build lists):
    feature_names: tuple[str, ...] = ()  # the raw inputs, in spec order
    outputs: tuple[str, ...] = ()  # what `model.predict` returns, in answer order
    # Raw typed values go through `encoding.encode`; False: the all-float `[N, F]` hot path.
    typed: bool = False

    @property
    def label(self) -> str:
        return f"{self.project}/{self.version}"


def output_names(spec: ProjectSpec, latent_dim: int) -> tuple[str, ...]:
    """The outputs a version answers: by task, and `latent` only when its family has one."""
    names = ["probability", "label"] if spec.is_classification else ["prediction"]
    return (*names, "latent") if latent_dim > 0 else tuple(names)


def needs_encoding(spec: ProjectSpec, encoding: EncodingState | None) -> bool:
    """Whether raw values must pass the encoder: anything but complete floats, as they are."""
    if encoding is None:
        return False
    plain = all(f.dtype == "float" and f.missing == "refuse" for f in spec.features)
    return not plain or bool(spec.derived)


def version_spec(model_dir: Path, fallback: ProjectSpec) -> ProjectSpec:
    """The spec a version was trained under; `fallback` for one written before it travelled."""
    if not (model_dir / SPEC_FILE).is_file():
        return fallback
    try:
        spec = read_spec(model_dir)
    except Exception as exc:  # the version's file: a refusal, not a server error
        raise VersionRefusedError(f"its {SPEC_FILE} is unreadable: {type(exc).__name__}") from exc
    # Served under the registered model's name, whatever the name it was trained under.
    return spec if spec.name == fallback.name else spec.model_copy(update={"name": fallback.name})


def startup_spec(project: str, ref: str, source_for: Callable[[str], VersionSource]) -> ProjectSpec:
    """The spec a server starts with: the bundled one, else the one `ref`'s version carries.

    A project that is not bundled with the package (trained from a spec path) is served
    from its registered version alone: the generic serving image (issue 11 §2).
    `source_for(project)`: where its versions come from (asked only for such a project).
    """
    try:
        return load_spec(project)
    except SpecError as not_bundled:
        try:
            source = source_for(project)
            folder = source.fetch(source.resolve(ref))
        except CastmlError as exc:
            # Neither bundled nor served from the registry: the project name is the problem
            # to fix first (a configuration error), with the registry's answer beside it.
            raise SpecError(f"{not_bundled}; and its version {ref}: {exc}") from exc
        if not (folder / MODEL_SUBDIR / SPEC_FILE).is_file():
            raise SpecError(f"{not_bundled}; and its version {ref} carries no spec") from None
        spec = read_spec(folder / MODEL_SUBDIR)
        return spec if spec.name == project else spec.model_copy(update={"name": project})


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


def smoke_matrix(spec: ProjectSpec, encoding: EncodingState | None) -> np.ndarray:
    """Two rows the model must predict: `smoke_rows`, encoded when the version is typed.

    Typed: numbers in the middle of their bounds (or normal range), the first category of
    each vocabulary, false, and a fixed date; through the version's own encoder.
    """
    if encoding is None or not needs_encoding(spec, encoding):
        return smoke_rows(spec)
    columns: dict[str, np.ndarray] = {}
    for feature, state in zip(spec.features, encoding.features, strict=True):
        value: object
        if feature.dtype in {"float", "int"}:
            low, high = feature.normal or feature.bounds
            value = (low + high) / 2 if feature.dtype == "float" else float((low + high) // 2)
        elif feature.dtype == "categorical":
            value = state.vocabulary[0] if state.vocabulary else None
        elif feature.dtype == "bool":
            value = False
        else:
            value = "2024-01-01T12:00:00"
        columns[feature.name] = np.asarray([value, value], dtype=object)
    return np.ascontiguousarray(encoding.encode(columns, np.float32))


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
            model_dir = folder / MODEL_SUBDIR
            own = version_spec(model_dir, spec)
            encoding = read_encoding(model_dir) if has_encoding(model_dir) else None
            seconds = trial_load(
                folder,
                version,
                own.model_input_names,
                smoke_matrix(own, encoding),
                trial_timeout_s,
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
    model_dir = folder / MODEL_SUBDIR
    try:
        own = version_spec(model_dir, spec)
        encoding = read_encoding(model_dir) if has_encoding(model_dir) else None
    except VersionRefusedError as exc:
        raise VersionRefusedError(f"version {version}: {exc}") from exc
    except Exception as exc:
        raise VersionRefusedError(
            f"version {version}: its encoding is unreadable: {type(exc).__name__}"
        ) from exc
    try:
        model = load_model(model_dir)
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
    _smoke_test(model, own, encoding, version, background)
    return ServedModel(
        spec.name,
        version,
        model,
        background,
        time.time(),
        own,
        encoding,
        tuple(own.feature_names),
        output_names(own, model.manifest.latent_dim),
        needs_encoding(own, encoding),
    )


def _smoke_test(
    model: LoadedModel,
    spec: ProjectSpec,
    encoding: EncodingState | None,
    version: str,
    background: np.ndarray | None,
) -> None:
    """The version's model against its own spec: its inputs, and a prediction that works."""
    if model.features != spec.model_input_names:
        raise VersionRefusedError(
            f"version {version} expects other features than the '{spec.name}' spec"
        )
    if background is not None and background.shape[1:] != (len(model.features),):
        raise VersionRefusedError(
            f"version {version}: background has shape {list(background.shape)}"
        )
    try:
        rows = smoke_matrix(spec, encoding)
    except Exception as exc:
        raise VersionRefusedError(f"version {version} failed to encode smoke rows: {exc}") from exc
    try:
        out = model.predict(rows)
    except Exception as exc:
        raise VersionRefusedError(f"version {version} failed its smoke prediction: {exc}") from exc
    for name, values in out.items():
        if values.shape[0] != len(rows) or not np.isfinite(values).all():
            raise VersionRefusedError(
                f"version {version} failed its smoke prediction: bad '{name}'"
            )
