"""How the serving modules meet: no import cycles, one place for what the two clients share."""

from __future__ import annotations

import ast
from pathlib import Path

SERVING = Path(__file__).resolve().parents[3] / "serving"


def imports_of(module: str) -> set[str]:
    """Every `serving.*` module a module imports, at its top or inside a function."""
    tree = ast.parse((SERVING / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("serving."):
            found.add(node.module.removeprefix("serving."))
        elif isinstance(node, ast.Import):
            found.update(
                a.name.removeprefix("serving.") for a in node.names if a.name.startswith("serving.")
            )
    return found


# The request paths of the three roles (the version loading has its own modules).
REQUEST_PATH = {
    "predictor",
    "predictor_core",
    "grpc_server",
    "grpc_client",
    "predictor_client",
    "predictor_reply",
    "http_client",
    "transformer",
    "explainer",
    "validation",
    "metrics",
    "payload_log",
    "v2_proto",
    "anchors",
    "attribution_chart",
    "errors",
}


def test_no_import_cycle_among_the_request_path_modules() -> None:
    modules = REQUEST_PATH
    graph = {m: imports_of(m) & modules for m in modules}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(m for m in modules if reaches(m, m, {m}))
    assert cycles == [], f"import cycles through {cycles}"


def test_the_clients_share_their_reply_through_one_small_module() -> None:
    assert "predictor_client" not in imports_of("grpc_client")
    assert "predictor_reply" in imports_of("grpc_client")
    assert "predictor_reply" in imports_of("predictor_client")


def test_the_transformer_logs_nothing_itself() -> None:
    assert "payload_log" not in imports_of("transformer")
    assert "cloudevent_sender" not in (SERVING / "transformer.py").read_text()


def test_the_rest_and_grpc_adapters_share_the_core() -> None:
    for adapter in ("predictor", "grpc_server"):
        assert "predictor_core" in imports_of(adapter)
    assert "predictor" not in imports_of("grpc_server")  # the adapters do not know each other
