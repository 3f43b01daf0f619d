"""`castml assist` as a user runs it, a real process against the loopback stack: a shot's
report (tables and --json), a free question, and the one `error:` line when it cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.assist_stack import AssistStack
from tests.support.ports import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def castml(assist: AssistStack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "castml.cli.main", "assist", *args],
        cwd=REPO,
        env={**os.environ, **assist.env(**env), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_report_as_json_and_tables(assist: AssistStack, tmp_path: Path) -> None:
    shot = tmp_path / "shot.json"
    shot.write_text(json.dumps({"features": {**assist.shot(2), "Sensor_HydrogenContent": 0.5}}))

    as_json = castml(assist, "--shot", str(shot), "--json", "--language", "en")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert [s["status"] for s in report["steps"]] == ["ok", "ok", "ok"]
    assert report["prediction"]["class"] in ("ok", "defect")
    assert report["versions"]["knowledge"] == "diecast-kb/1"
    assert report["answer"]["sources"][0]["document"].startswith("en-")

    shown = castml(assist, "--shot", str(shot))  # Korean by default
    assert shown.returncode == 0, shown.stderr
    for text in ("prediction:", "top features", "Sensor_HydrogenContent", "sources", "ko-"):
        assert text in shown.stdout, shown.stdout


def test_question_and_partial_report(assist: AssistStack, tmp_path: Path) -> None:
    asked = castml(assist, "가스 기공 원인은?")
    assert asked.returncode == 0, asked.stderr
    assert "[ko-gas-porosity, §" in asked.stdout and "diecast-kb/1" in asked.stdout

    shot = tmp_path / "shot.json"
    shot.write_text(json.dumps(assist.shot(3)))
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    partial = castml(assist, "--shot", str(shot), explainer_url=dead, step_timeout_s="2")
    assert partial.returncode == 0, partial.stderr
    assert "explain failed:" in partial.stdout and "connection refused" in partial.stdout
    assert "prediction:" in partial.stdout


@pytest.mark.parametrize(
    ("args", "content", "expected"),
    [
        (["--shot", "{shot}"], "{not json", "is not valid JSON"),
        (["--shot", "{shot}"], "[1, 2]", "must hold a JSON object"),
        (["--shot", "{shot}"], "TEXT_IN_A_NUMBER_FIELD", "Process_Pressure: "),
        (["--shot", "{missing}"], None, "cannot read the shot file"),
        ([], None, "give a question"),
        (["   "], None, "the question is empty"),
    ],
)
def test_errors_are_one_line(
    assist: AssistStack, tmp_path: Path, args: list[str], content: str | None, expected: str
) -> None:
    shot = tmp_path / "shot.json"
    if content == "TEXT_IN_A_NUMBER_FIELD":
        content = json.dumps({**assist.shot(4), "Process_Pressure": "high"})
    if content is not None:
        shot.write_text(content)
    args = [a.format(shot=shot, missing=tmp_path / "missing.json") for a in args]
    result = castml(assist, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert expected in lines[0] and "Traceback" not in result.stderr


def test_knowledge_base_down_is_one_error_line(assist: AssistStack) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = castml(assist, "what causes flash?", knowledge_url=dead)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: knowledge failed: the knowledge base at")
    assert "connection refused (after 2 attempts)" in result.stderr
