"""Where versions come from, and how one becomes the served model.

A version is pinned once: an alias (`champion`) is resolved to a number at load time
and never followed implicitly afterwards; only an explicit load switches versions.
Registry versions are cached on disk (`<cache>/<project>/<version>/`), so a restart
with a cached version needs no download and no `mlflow` import.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import numpy as np

from castml.errors import CastmlError
from castml.registry import BACKGROUND_ARTIFACT
from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import ProjectSpec
from serving.errors import NotFoundError, VersionRefusedError

MODEL_SUBDIR = "model"
BACKGROUND_FILE = "background.npy"
COMPLETE_MARKER = ".complete"
ALIASES_FILE = "aliases.json"


@dataclass(frozen=True)
class ServedModel:
    """One loaded version. Immutable: a switch replaces the whole object."""

    project: str
    version: str
    model: AeGbmModel
    background: np.ndarray | None
    loaded_at: float

    @property
    def label(self) -> str:
        return f"{self.project}/{self.version}"


class VersionSource(Protocol):
    def resolve(self, ref: str) -> str:
        """A concrete version number for `ref` (a number or an alias)."""

    def fetch(self, version: str) -> Path:
        """A local folder holding `model/` and, when logged, `background.npy`."""


class LocalStore:
    """`<root>/<version>/model`; aliases, when used, in `<root>/aliases.json`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, ref: str) -> str:
        ref = ref.lstrip("@")
        if ref.isdigit():
            return ref
        aliases_path = self.root / ALIASES_FILE
        aliases: dict[str, str] = (
            json.loads(aliases_path.read_text()) if aliases_path.is_file() else {}
        )
        if ref not in aliases:
            raise NotFoundError(f"no alias @{ref} in the model store {self.root}")
        return str(aliases[ref])

    def fetch(self, version: str) -> Path:
        folder = self.root / version
        if not (folder / MODEL_SUBDIR).is_dir():
            raise NotFoundError(f"no version {version} in the model store {self.root}")
        return folder


class RegistryStore:
    """The MLflow registry, through its REST API for look-ups (cheap, no `mlflow` import)."""

    def __init__(
        self, tracking_uri: str, project: str, cache: Path, timeout_s: float = 10.0
    ) -> None:
        self.uri = tracking_uri.rstrip("/")
        self.project = project
        self.cache = cache / project
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict[str, str]) -> dict[str, object]:
        try:
            response = httpx.get(f"{self.uri}{path}", params=params, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise VersionRefusedError(f"MLflow at {self.uri} is unreachable: {exc}") from exc
        if response.status_code in (400, 404):
            what = params.get("alias") or params.get("version")
            raise NotFoundError(f"model '{self.project}' has no version or alias '{what}'")
        response.raise_for_status()
        body: dict[str, object] = response.json()
        return body

    def model_version(self, ref: str) -> dict[str, str]:
        ref = ref.lstrip("@")
        if ref.isdigit():
            body = self._get(
                "/api/2.0/mlflow/model-versions/get", {"name": self.project, "version": ref}
            )
        else:
            body = self._get(
                "/api/2.0/mlflow/registered-models/alias", {"name": self.project, "alias": ref}
            )
        found = body.get("model_version")
        if not isinstance(found, dict):
            raise NotFoundError(f"model '{self.project}' has no version or alias '{ref}'")
        return {str(k): str(v) for k, v in found.items() if isinstance(v, str | int)}

    def resolve(self, ref: str) -> str:
        return self.model_version(ref)["version"]

    def fetch(self, version: str) -> Path:
        folder = self.cache / version
        if (folder / COMPLETE_MARKER).is_file():
            return folder
        import mlflow.artifacts

        from castml.registry import download_model_dir

        run_id = self.model_version(version).get("run_id", "")
        self.cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.cache))
        try:
            model_dir = download_model_dir(self.project, version, staging / "download", self.uri)
            shutil.move(str(model_dir), str(staging / MODEL_SUBDIR))
            shutil.rmtree(staging / "download", ignore_errors=True)
            if run_id:
                try:
                    local = mlflow.artifacts.download_artifacts(
                        run_id=run_id,
                        artifact_path=BACKGROUND_ARTIFACT,
                        dst_path=str(staging / "bg"),
                        tracking_uri=self.uri,
                    )
                    shutil.move(local, str(staging / BACKGROUND_FILE))
                    shutil.rmtree(staging / "bg", ignore_errors=True)
                except Exception:  # a version without a background still serves
                    pass
            (staging / COMPLETE_MARKER).touch()
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)  # atomic: a half download is never seen as cached
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder


def smoke_rows(spec: ProjectSpec) -> np.ndarray:
    """Rows in the middle of each feature's normal range (or bounds): a prediction must work."""
    mid = [
        (f.normal[0] + f.normal[1]) / 2 if f.normal else (f.bounds[0] + f.bounds[1]) / 2
        for f in spec.features
    ]
    return np.asarray([mid, mid], dtype=np.float32)


def load_version(source: VersionSource, spec: ProjectSpec, ref: str) -> ServedModel:
    """Resolve, fetch, load and smoke-test one version; any failure refuses it (422)."""
    version = source.resolve(ref)
    try:
        folder = source.fetch(version)
        model = AeGbmModel.load(folder / MODEL_SUBDIR)
        background_path = folder / BACKGROUND_FILE
        background = (
            np.ascontiguousarray(np.load(background_path), dtype=np.float32)
            if background_path.is_file()
            else None
        )
    except (NotFoundError, VersionRefusedError):
        raise
    except (OSError, ValueError, KeyError, TypeError, CastmlError) as exc:
        raise VersionRefusedError(
            f"version {version} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:  # LightGBM raises its own error type on a corrupt model file
        raise VersionRefusedError(
            f"version {version} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    _smoke_test(model, spec, version, background)
    return ServedModel(spec.name, version, model, background, time.time())


def _smoke_test(
    model: AeGbmModel, spec: ProjectSpec, version: str, background: np.ndarray | None
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
