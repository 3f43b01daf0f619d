"""Versions from the MLflow registry, cached on disk and checked against their digests.

Look-ups use MLflow's REST API (cheap, no `mlflow` import); downloads use `mlflow`.
A download lands in `<cache>/<project>/<version>/` (`model/`, `background.npy`,
`digests.json`, `.complete`) by one rename, so a half download is never seen as cached.
Its files are checked against the `castml.digests` tag recorded at registration; a version
registered before digests were recorded is checked against what was downloaded, so later
damage to the cache is still caught.

A numeric version that is cached and still matches its digests needs no MLflow at all:
a restart or a scale-up during an MLflow outage serves it (issue 10 §5). Failures to reach
MLflow are 503 with Retry-After (`RegistryUnavailableError`); only verdicts on the version
itself (absent: 404; corrupt: 422) are the version's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from castml import model_digests
from castml.errors import CastmlError
from castml.protocol.mlflow_names import BACKGROUND_ARTIFACT, TAG_DIGESTS
from castml.web.errors import UnavailableError
from serving.errors import NotFoundError, VersionRefusedError
from serving.version_verdicts import Verdicts

log = logging.getLogger("serving.registry")

MODEL_SUBDIR = "model"
BACKGROUND_FILE = "background.npy"
COMPLETE_MARKER = ".complete"
DIGESTS_FILE = "digests.json"
RETRY_AFTER_S = 5


class RegistryUnavailableError(UnavailableError):
    """MLflow cannot be reached, timed out or answered 5xx: retry; nothing is wrong with
    the version."""

    def __init__(self, message: str) -> None:
        super().__init__(message, RETRY_AFTER_S)


class RegistryConfigError(CastmlError):
    """The MLflow URI cannot be a registry serving talks to (serving needs http or https)."""


class ModelNotRegisteredError(NotFoundError):
    """The registered model itself does not exist (not only the version or alias)."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)

    def digests(self) -> dict[str, str] | None:
        """The digests recorded at registration; None for a version registered before."""
        text = self.tags.get(TAG_DIGESTS)
        if text is None:
            return None
        try:
            return model_digests.decode(text)
        except ValueError as exc:
            raise VersionRefusedError(
                f"version {self.version}: its {TAG_DIGESTS} tag is unreadable ({exc})"
            ) from exc


def check_uri(uri: str) -> str:
    try:
        url = httpx.URL(uri)
    except httpx.InvalidURL as exc:
        raise RegistryConfigError(f"the MLflow URI '{uri}' is not a URL: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise RegistryConfigError(
            f"the MLflow URI '{uri}' is not an http(s) URL of an MLflow server"
        )
    return uri.rstrip("/")


class RegistryStore:
    """The MLflow registry as a `VersionSource` (serving.version_store)."""

    def __init__(
        self, tracking_uri: str, project: str, cache: Path, timeout_s: float = 10.0
    ) -> None:
        self.uri = check_uri(tracking_uri)
        self.project = project
        self.cache = cache / project
        self.timeout_s = timeout_s
        self.verdicts = Verdicts(self.cache)

    # -- look-ups ------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, str]) -> dict[str, object] | None:
        """The JSON answer; None for 404 (or MLflow's 400 for a bad name)."""
        try:
            response = httpx.get(f"{self.uri}{path}", params=params, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(
                f"MLflow at {self.uri} is unreachable ({type(exc).__name__})"
            ) from exc
        if response.status_code in (400, 404):
            return None
        if response.status_code >= 500 or response.status_code != 200:
            raise RegistryUnavailableError(
                f"MLflow at {self.uri} answered {response.status_code} to a registry look-up"
            )
        try:
            body: dict[str, object] = response.json()
        except ValueError as exc:
            raise RegistryUnavailableError(
                f"MLflow at {self.uri} answered something that is not JSON"
            ) from exc
        return body

    def _absent(self, ref: str) -> NotFoundError:
        found = self._get("/api/2.0/mlflow/registered-models/get", {"name": self.project})
        if found is None:
            return ModelNotRegisteredError(
                f"model '{self.project}' is not registered in MLflow at {self.uri}"
            )
        if ref.isascii() and ref.isdigit():
            return NotFoundError(f"model '{self.project}' has no version {ref}")
        return NotFoundError(f"model '{self.project}' has no alias @{ref}")

    def model_version(self, ref: str) -> VersionInfo:
        ref = ref.lstrip("@")
        if ref.isascii() and ref.isdigit():
            body = self._get(
                "/api/2.0/mlflow/model-versions/get", {"name": self.project, "version": ref}
            )
        else:
            body = self._get(
                "/api/2.0/mlflow/registered-models/alias", {"name": self.project, "alias": ref}
            )
        found = None if body is None else body.get("model_version")
        if not isinstance(found, dict) or "version" not in found:
            raise self._absent(ref)
        raw_tags = found.get("tags")
        tags = {
            str(t["key"]): str(t.get("value", ""))
            for t in (raw_tags if isinstance(raw_tags, list) else [])
            if isinstance(t, dict) and "key" in t
        }
        return VersionInfo(str(found["version"]), str(found.get("run_id") or ""), tags)

    def resolve(self, ref: str) -> str:
        ref = ref.lstrip("@")
        if (ref.isascii() and ref.isdigit()) and self._cached(ref) is not None:
            return ref  # a pinned, digest-verified cached version needs no MLflow
        return self.model_version(ref).version

    # -- the cache -----------------------------------------------------------------------
    def _cached(self, version: str) -> Path | None:
        """The cached folder if it is complete and its files still match their digests."""
        folder = self.cache / version
        if not (folder / COMPLETE_MARKER).is_file():
            return None
        actual = served(folder)
        digests_file = folder / DIGESTS_FILE
        if actual and not digests_file.exists():
            # Cached before digests were kept: adopt what is there. It is not trusted for
            # that; it still goes through a trial load before serving loads it.
            write_digests(folder, actual, recorded=False)
            return folder
        try:
            recorded = model_digests.decode(json.loads(digests_file.read_text())["files"])
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None
        if recorded is not None and actual and not model_digests.mismatches(recorded, actual):
            return folder
        # Damage to the local copy is not a verdict on the version: download it again.
        log.warning(
            "cached version %s of %s failed its digest check; dropped", version, self.project
        )
        shutil.rmtree(folder, ignore_errors=True)
        return None

    def fetch(self, version: str) -> Path:
        cached = self._cached(version)
        if cached is not None:
            return cached
        info = self.model_version(version)
        expected = info.digests()
        self.cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.cache))
        folder = self.cache / version
        try:
            self._download(
                version,
                info.run_id,
                staging,
                background_required=bool(expected and model_digests.BACKGROUND_PART in expected),
            )
            actual = served(staging)
            if expected is not None:
                bad = model_digests.mismatches(expected, actual)
                if bad:
                    listed = ", ".join(bad[:5]) + (
                        f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
                    )
                    raise VersionRefusedError(
                        f"version {version}: {listed} do(es) not match the digests recorded "
                        "at registration"
                    )
            write_digests(staging, actual, recorded=expected is not None)
            (staging / COMPLETE_MARKER).touch()
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)  # atomic: a half download is never seen as cached
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder

    def _download(
        self, version: str, run_id: str, staging: Path, background_required: bool
    ) -> None:
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        from castml.registry import download_model_dir

        try:
            model_dir = download_model_dir(self.project, version, staging / "download", self.uri)
            shutil.move(str(model_dir), str(staging / MODEL_SUBDIR))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise VersionRefusedError(
                    f"version {version}: its model files are missing from the registry"
                ) from exc
            raise self._download_failed(version, exc) from exc
        except Exception as exc:  # requests' connection errors, timeouts, OSError
            raise self._download_failed(version, exc) from exc
        finally:
            shutil.rmtree(staging / "download", ignore_errors=True)
        if not run_id:
            return
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=BACKGROUND_ARTIFACT,
                dst_path=str(staging / "bg"),
                tracking_uri=self.uri,
            )
            shutil.move(local, str(staging / BACKGROUND_FILE))
        except Exception as exc:  # a version without a background still serves
            if background_required:
                raise self._download_failed(version, exc) from exc
        finally:
            shutil.rmtree(staging / "bg", ignore_errors=True)

    def _download_failed(self, version: str, exc: Exception) -> RegistryUnavailableError:
        return RegistryUnavailableError(
            f"downloading version {version} from MLflow at {self.uri} failed "
            f"({type(exc).__name__}); retry"
        )


def write_digests(folder: Path, digests: dict[str, str], recorded: bool) -> None:
    """`recorded`: checked against the registration's digests (else: as downloaded)."""
    text = json.dumps({"recorded": recorded, "files": model_digests.encode(digests)})
    with contextlib.suppress(OSError):  # a read-only cache re-hashes from the files next time
        (folder / DIGESTS_FILE).write_text(text)


def served(folder: Path) -> dict[str, str]:
    """The digests of a version folder as serving lays it out."""
    model = folder / MODEL_SUBDIR
    if not model.is_dir():
        return {}
    return model_digests.served_digests(model, folder / BACKGROUND_FILE)
