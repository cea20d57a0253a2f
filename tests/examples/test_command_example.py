"""examples/command: runs offline as it is, through the engine and through ``flowforge run``;
docs/blocks/command.md shows verbatim excerpts of it."""

from __future__ import annotations

import json
from pathlib import Path

from example_kit import assert_page_shows_the_example, flowforge_run

import flowforge

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "command" / "command_tour.yaml"
PAGE = ROOT / "docs" / "blocks" / "command.md"

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
    done = flowforge_run(EXAMPLE, tmp_path)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == EXPECTED


def test_the_page_shows_verbatim_excerpts_of_the_example() -> None:
    assert_page_shows_the_example(PAGE, 3)
