"""The loopback platform the agent and UI tests run against (tests.support.assist_stack), once
per session: predictor, transformer, explainer, the knowledge role and the collector, on
the serving tests' model store (trained once per session, in the same place).

`assist` (the agent's tests) and `ui_platform` (the UI's) are the same stack.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.assist_stack import AssistStack, assist_stack
from tests.unit.serving.support import build_store


@pytest.fixture(scope="session")
def assist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AssistStack]:
    store = build_store(tmp_path_factory.getbasetemp() / "serving-store")
    root = tmp_path_factory.mktemp("assist-stack")
    with assist_stack(root, collector=True, model_store=store) as stack:
        yield stack


@pytest.fixture(scope="session")
def ui_platform(assist: AssistStack) -> AssistStack:
    return assist
