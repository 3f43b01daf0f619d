"""Registry reads and writes against a real MLflow server, on each backend store: SQLite (the
embedded server) and PostgreSQL (the chart's `mlflow/entrypoint.sh` on a real server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from castml import registry
from castml.protocol.mlflow_names import CHAMPION, TAG_DATA_HASH, TAG_DIGESTS, TAG_GATE
from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import load_spec
from serving.version_store import smoke_rows
from tests.conftest import RegisteredProject

pytestmark = pytest.mark.integration


@pytest.fixture
def project(registered_on_each_backend: RegisteredProject) -> Iterator[RegisteredProject]:
    """The session's registered project; @champion is put back on its first version after
    each test, since the next test on this backend shares the server."""
    yield registered_on_each_backend
    client = registry.client(registered_on_each_backend.uri)
    first = registered_on_each_backend.versions[0]
    client.set_registered_model_alias(registered_on_each_backend.project, CHAMPION, str(first))


def test_versions_carry_their_aliases_and_the_challenger_is_next(
    project: RegisteredProject,
) -> None:
    client = registry.client(project.uri)
    rows = {row.version: row for row in registry.list_versions(client, project.project)}
    first, second = project.versions
    assert "champion" in rows[first].aliases
    assert rows[second].aliases == ["challenger"]
    candidate = registry.promotion_candidate(client, project.project)
    assert candidate is not None and candidate.version == second
    assert registry.resolve_version(client, project.project, "@champion").version == str(first)


def test_moving_the_champion_alias_is_read_back(project: RegisteredProject) -> None:
    client = registry.client(project.uri)
    first, second = project.versions
    client.set_registered_model_alias(project.project, CHAMPION, str(second))
    assert registry.resolve_version(client, project.project, "@champion").version == str(second)
    rows = {row.version: row for row in registry.list_versions(client, project.project)}
    assert CHAMPION not in rows[first].aliases
    assert sorted(rows[second].aliases) == ["challenger", "champion"]
    # With the challenger promoted, what is left to promote is the old champion (a rollback).
    candidate = registry.promotion_candidate(client, project.project)
    assert candidate is not None and candidate.version == first


def test_version_tags_written_at_registration_and_by_hand(project: RegisteredProject) -> None:
    client = registry.client(project.uri)
    version = str(project.versions[0])
    tags = client.get_model_version(project.project, version).tags
    assert tags[TAG_GATE].startswith("passed") and tags[TAG_DATA_HASH]
    assert TAG_DIGESTS in tags
    # A long value with non-ASCII text: a text column on PostgreSQL, not only in SQLite.
    value = "검사 통과 " * 200
    client.set_model_version_tag(project.project, version, "castml.test.note", value)
    try:
        assert client.get_model_version(project.project, version).tags["castml.test.note"] == value
        found = client.search_model_versions(
            f"name = '{project.project}' and tag.`castml.test.note` = '{value}'"
        )
        assert [v.version for v in found] == [version]
    finally:
        client.delete_model_version_tag(project.project, version, "castml.test.note")
    assert "castml.test.note" not in client.get_model_version(project.project, version).tags


def test_model_artifacts_go_through_the_server_and_load_back(
    project: RegisteredProject, tmp_path: Path
) -> None:
    """The server proxies artifacts (--serve-artifacts): clients log and fetch over HTTP."""
    client = MlflowClient(project.uri, registry_uri=project.uri)
    version = str(project.versions[0])
    source = client.get_model_version_download_uri(project.project, version)
    assert source.startswith("mlflow-artifacts:"), source
    model_dir = registry.download_model_dir(project.project, version, tmp_path, project.uri)
    out = AeGbmModel.load(model_dir).predict(smoke_rows(load_spec("diecast")))
    probability = np.asarray(out["probability"])
    assert probability.shape == (2,) and np.all((probability >= 0) & (probability <= 1))
