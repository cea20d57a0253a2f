"""examples/llm: the triage workflow against the example's fake OpenAI-compatible server (a
real process on 127.0.0.1), through the engine and through ``flowforge run``;
docs/blocks/llm.md shows verbatim excerpts of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from example_kit import assert_page_shows_the_example, example_server, flowforge_run

import flowforge

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llm" / "triage.yaml"
SERVER = ROOT / "examples" / "llm" / "fake_llm_server.py"
PAGE = ROOT / "docs" / "blocks" / "llm.md"
REPLY = (
    "Thank you for writing to us. We are sorry for the trouble and have passed your message to "
    "the right team; you will hear from us within a day."
)


@pytest.fixture
def base_url() -> Iterator[str]:
    with example_server(SERVER) as url:
        yield url


def test_triage_gives_validated_json_after_one_repair_and_a_reply(
    base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-example")
    with flowforge.Engine(f"sqlite:///{tmp_path}/x.db") as engine:
        result = engine.run(flowforge.load(EXAMPLE), {"base_url": base_url})
        logs = [line.message for line in engine.logs(result.run_id, "triage")]

    assert result.status == "completed", [b.error for b in result.blocks]
    assert result.outputs == {"category": "billing", "urgency": 4, "reply": REPLY}
    usage = result.block("triage").annotations
    assert usage is not None and usage["usage"]["requests"] == 2  # the fake's first try is wrong
    assert any("asking the model to repair it" in m for m in logs)
    assert "the repaired reply is valid" in logs


def test_triage_of_a_calm_bug_report(
    base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-example")
    ticket = "The export button shows an error."
    with flowforge.Engine(f"sqlite:///{tmp_path}/x.db") as engine:
        result = engine.run(flowforge.load(EXAMPLE), {"base_url": base_url, "ticket": ticket})

    assert result.outputs is not None
    assert (result.outputs["category"], result.outputs["urgency"]) == ("bug", 2)
    usage = result.block("triage").annotations
    assert usage is not None and usage["usage"]["requests"] == 1


def test_triage_with_flowforge_run(base_url: str, tmp_path: Path) -> None:
    done = flowforge_run(
        EXAMPLE, tmp_path, "-p", f"base_url={base_url}", env={"OPENAI_API_KEY": "sk-example"}
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"category": "billing", "urgency": 4, "reply": REPLY}


def test_the_page_shows_verbatim_excerpts_of_the_example() -> None:
    assert_page_shows_the_example(PAGE, 2)
