"""examples/code: runs offline as it is, through the engine and through ``flowforge run``;
docs/blocks/code.md shows verbatim excerpts of it."""

from __future__ import annotations

import json
from pathlib import Path

from example_kit import assert_page_shows_the_example, flowforge_run

import flowforge

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "code" / "word_stats.yaml"
PAGE = ROOT / "docs" / "blocks" / "code.md"

EXPECTED = {"report": "13 words; most common: the (5), cat (2)", "refused": "InsecureCode"}


def test_word_stats_runs_and_reports(tmp_path: Path) -> None:
    with flowforge.Engine(f"sqlite:///{tmp_path}/x.db") as engine:
        result = engine.run(flowforge.load(EXAMPLE))
        logs = [(x.level, x.message) for x in engine.logs(result.run_id, "stats")]

    assert result.status == "completed"
    assert result.outputs == EXPECTED
    assert result.block("stats").output == {
        "words": 13,
        "top": [{"word": "the", "count": 5}, {"word": "cat", "count": 2}],
    }
    refused = result.block("refused")
    assert refused.status == "failed" and refused.attempts == 1
    assert refused.error is not None
    assert "line 1: import of module 'os' is not allowed" in refused.error["message"]
    assert logs[0][1].startswith("sandbox: ")
    assert ("INFO", "13 words, 6 distinct") in logs


def test_word_stats_text_and_top_are_parameters(tmp_path: Path) -> None:
    with flowforge.Engine(f"sqlite:///{tmp_path}/x.db") as engine:
        result = engine.run(flowforge.load(EXAMPLE), {"text": "b a b c b", "top": 1})

    assert result.outputs is not None
    assert result.outputs["report"] == "5 words; most common: b (3)"


def test_word_stats_with_flowforge_run(tmp_path: Path) -> None:
    done = flowforge_run(EXAMPLE, tmp_path)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == EXPECTED


def test_the_page_shows_verbatim_excerpts_of_the_example() -> None:
    assert_page_shows_the_example(PAGE, 2)
