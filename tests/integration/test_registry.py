"""Registry reads against a real MLflow server."""

from __future__ import annotations

import pytest

from castml import registry
from tests.conftest import RegisteredProject

pytestmark = pytest.mark.integration


def test_versions_carry_their_aliases_and_the_challenger_is_next(
    registered_diecast: RegisteredProject,
) -> None:
    client = registry.client(registered_diecast.uri)
    rows = {row.version: row for row in registry.list_versions(client, registered_diecast.project)}
    first, second = registered_diecast.versions
    assert "champion" in rows[first].aliases
    assert rows[second].aliases == ["challenger"]
    candidate = registry.promotion_candidate(client, registered_diecast.project)
    assert candidate is not None and candidate.version == second
    assert registry.resolve_version(client, registered_diecast.project, "@champion").version == str(
        first
    )
