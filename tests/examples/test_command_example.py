"""examples/command: runs offline as it is, through the engine and through ``flowforge run``;
docs/blocks/command.md shows verbatim excerpts of it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import flowforge

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "command" / "command_tour.yaml"
PAGE = ROOT / "docs" / "blocks" / "command.md"
FROM_EXAMPLE = re.compile(r"<!-- from (examples/\S+) -->\n```\w*\n(.*?)```", re.DOTALL)

EXPECTED = {
    "report": {
        "words": ["apple", "fig", "pear"],
        "count": 3,
        "check": "CommandFailed: command 'sh' exited with code 2; stderr ends with: "
        "checksum mismatch",
    }
}


def test_command_tour_runs_and_reports(tmp_path: Path) -> None:
    with flowforge.Engine(f"sqlite:///{tmp_path}/x.db") as engine:
        result = engine.run(flowforge.load(EXAMPLE))
        logs = [(x.level, x.message) for x in engine.logs(result.run_id, "unique")]

    assert result.status == "completed"
    assert result.outputs == EXPECTED
    assert result.block("check").status == "failed"
    assert [m for level, m in logs if level == "INFO"][1:4] == ["apple", "fig", "pear"]


def test_command_tour_words_are_a_parameter(tmp_path: Path) -> None:
    with flowforge.Engine(f"sqlite:///{tmp_path}/x.db") as engine:
        result = engine.run(flowforge.load(EXAMPLE), {"words": ["b", "a", "b", "c", "a"]})

    assert result.outputs is not None
    assert result.outputs["report"]["words"] == ["a", "b", "c"]
    assert result.outputs["report"]["count"] == 3


def test_command_tour_with_flowforge_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWFORGE_")}
    env["FLOWFORGE_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "flowforge", "run", str(EXAMPLE.relative_to(ROOT))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == EXPECTED


def test_the_page_shows_verbatim_excerpts_of_the_example() -> None:
    text = PAGE.read_text()
    excerpts = FROM_EXAMPLE.findall(text)

    assert len(excerpts) >= 3
    for path, code in excerpts:
        assert code in (ROOT / path).read_text(), f"excerpt of {path} is out of date"
    for path in re.findall(r"(?<![\w/])examples/[\w/.-]+\.(?:yaml|py)", text):
        assert (ROOT / path).exists(), path
