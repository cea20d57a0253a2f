"""Secrets are used by blocks but never persisted or returned in clear (SPEC 2.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from integration_kit import store_bytes

import flowforge

SECRET = "s3cr3t-Value-9f8e7d"
SIDE_EFFECT: dict[str, Path] = {}


def use_token(token: str, where: str) -> str:
    """A python block: proves it got the real value through a file, returns it (redacted)."""
    Path(where).write_text(token)
    return f"used {token}"


def _workflow(side_effect: Path) -> flowforge.Workflow:
    return flowforge.Workflow.from_dict(
        {
            "id": "with-secret",
            "parameters": {"token": {"type": "secret", "source": "env:FF_TEST_SECRET"}},
            "blocks": [
                {"id": "header", "type": "transform", "value": "Bearer {{ secrets.token }}"},
                {
                    "id": "call",
                    "type": "python",
                    "function": f"{__name__}:use_token",
                    "args": {"token": "{{ secrets.token }}", "where": str(side_effect)},
                },
                {
                    "id": "leaky",
                    "type": "python",
                    "function": f"{__name__}:fail_with",
                    "args": {"token": "{{ secrets.token }}"},
                    "continue_on_failure": True,
                },
                {
                    "id": "masked",
                    "type": "transform",
                    "value": "{{ params.token }}",
                    "depends_on": ["call"],
                },
            ],
        }
    )


def fail_with(token: str) -> None:
    raise RuntimeError(f"could not log in with {token}")


def test_secret_reaches_the_block_but_never_the_store_record_or_events(
    engine: flowforge.Engine, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FF_TEST_SECRET", SECRET)
    side_effect = tmp_path / "received.txt"
    result = engine.run(_workflow(side_effect))

    assert result.status == "completed"
    assert side_effect.read_text() == SECRET
    assert result.outputs == {"header": "Bearer ***", "masked": "***", "leaky": None}
    record = engine.get(result.run_id)
    assert record.parameters == {"token": "***"}
    assert record.block("call").output == "used ***"
    assert record.block("leaky").error == {
        "type": "RuntimeError",
        "message": "could not log in with ***",
    }
    visible: list[Any] = [result.to_dict(), record.to_dict()]
    visible += [(e.type, e.data) for e in engine.events(result.run_id)]
    assert SECRET not in json.dumps(visible, default=str)
    stored = store_bytes(engine, store_url)
    assert b"env:FF_TEST_SECRET" in stored  # the source is kept, to resolve it again on resume
    assert SECRET.encode() not in stored


def test_missing_secret_source_fails_the_block_that_uses_it(
    engine: flowforge.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FF_TEST_SECRET", raising=False)
    result = engine.run(_workflow(tmp_path / "never.txt"))
    assert result.status == "failed"
    error = result.block("header").error
    assert error is not None and "FF_TEST_SECRET" in error["message"]
    assert not (tmp_path / "never.txt").exists()
