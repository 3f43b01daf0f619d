"""Where the knowledge role's index versions come from: the registry (`<project>-kb`) or a folder.

A kb version is a pyfunc whose artifact `index` is the index directory
(`castml.protocol.mlflow_names.INDEX_DIR_IN_PYFUNC`), tagged with its corpus hash
(`castml.data_hash`). Look-ups reuse the predictor's registry store (MLflow's REST API, no
`mlflow` import); a download lands in `<cache>/<project>-kb/<version>/index/` by one
rename, with the expected corpus hash beside it, so a pinned, cached version restarts
without MLflow. Before anything loads it, the index is checked against its own manifest
(a sha256 per file) and against the version's corpus-hash tag; a mismatch is a verdict on
the version (`VersionRefusedError`, 422), never served.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from castml.knowledge.index_store import verify_index_dir
from castml.knowledge.kb_errors import IndexMismatchError
from castml.protocol.mlflow_names import INDEX_DIR_IN_PYFUNC, TAG_DATA_HASH
from serving.errors import NotFoundError, VersionRefusedError
from serving.registry_store import COMPLETE_MARKER, RegistryStore
from serving.version_store import LocalStore

log = logging.getLogger("serving.knowledge")

INDEX_SUBDIR = "index"
EXPECTED_FILE = "expected.json"  # the version's corpus-hash tag, kept for offline restarts


class IndexSource(Protocol):
    def resolve(self, ref: str) -> str:
        """A concrete version number for `ref` (a number or an alias)."""

    def fetch(self, version: str) -> tuple[Path, str | None]:
        """The verified index directory of `version` and the corpus hash it must carry."""


def verified(index_dir: Path, version: str, corpus_hash: str | None) -> Path:
    """`index_dir` if it matches its manifest and the version's corpus hash, else 422."""
    try:
        verify_index_dir(index_dir, corpus_hash)
    except IndexMismatchError as exc:
        raise VersionRefusedError(f"version {version}: {exc}") from None
    return index_dir


class LocalIndexStore(LocalStore):
    """`<root>/<version>/index` (aliases in `<root>/aliases.json`): tests and the demo."""

    def fetch(self, version: str) -> tuple[Path, str | None]:  # type: ignore[override]
        index_dir = self.root / version / INDEX_SUBDIR
        if not index_dir.is_dir():
            raise NotFoundError(f"no version {version} in the local knowledge store")
        return verified(index_dir, version, None), None


class RegistryIndexStore(RegistryStore):
    """The `<project>-kb` registered model, cached on disk like the predictor's versions."""

    def fetch(self, version: str) -> tuple[Path, str | None]:  # type: ignore[override]
        folder = self.cache / version
        cached = self._cached_index(folder, version)
        if cached is not None:
            return cached
        info = self.model_version(version)
        expected = info.tags.get(TAG_DATA_HASH)
        self.cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.cache))
        try:
            self._download_index(version, staging)
            # Checked before it is cached: a refused index never looks like a good copy.
            verified(staging / INDEX_SUBDIR, version, expected)
            (staging / EXPECTED_FILE).write_text(json.dumps({"corpus_hash": expected}))
            (staging / COMPLETE_MARKER).touch()
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)  # atomic: a half download is never seen as cached
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder / INDEX_SUBDIR, expected

    def _cached_index(self, folder: Path, version: str) -> tuple[Path, str | None] | None:
        if not (folder / COMPLETE_MARKER).is_file():
            return None
        try:
            expected = json.loads((folder / EXPECTED_FILE).read_text()).get("corpus_hash")
            verify_index_dir(folder / INDEX_SUBDIR, expected)
        except (OSError, ValueError, AttributeError, IndexMismatchError) as exc:
            # Damage to the local copy is not a verdict on the version: download it again.
            log.warning("cached kb version %s failed its check (%s); dropped", version, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return folder / INDEX_SUBDIR, expected

    def _download_index(self, version: str, staging: Path) -> None:
        from mlflow import MlflowClient
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        try:
            client = MlflowClient(self.uri, registry_uri=self.uri)
            source = client.get_model_version_download_uri(self.project, version)
            local = download_artifacts(
                artifact_uri=source, dst_path=str(staging / "download"), tracking_uri=self.uri
            )
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise VersionRefusedError(
                    f"version {version}: its files are missing from the registry"
                ) from exc
            raise self._download_failed(version, exc) from exc
        except Exception as exc:  # requests' connection errors, timeouts, OSError
            raise self._download_failed(version, exc) from exc
        index_dir = Path(local) / INDEX_DIR_IN_PYFUNC
        if not index_dir.is_dir():
            raise VersionRefusedError(
                f"version {version} of {self.project} holds no {INDEX_DIR_IN_PYFUNC}: "
                "it is not a knowledge-base version"
            )
        shutil.move(str(index_dir), str(staging / INDEX_SUBDIR))
        shutil.rmtree(staging / "download", ignore_errors=True)
