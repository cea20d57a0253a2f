"""A NUL character (which PostgreSQL cannot store) never stalls a run: outputs holding one are
refused with a clear error, messages and log lines show it escaped, on both stores."""

from __future__ import annotations

from typing import Any

import pytest

import flowforge
from flowforge.errors import InvalidInputError


def nul_output() -> str:
    return "a\x00b"


def nul_error(ctx: Any) -> None:
    ctx.logger.info("line with \x00 inside")
    raise ValueError("bad \x00 byte")


def test_nul_in_outputs_errors_and_logs(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "nul",
            "blocks": [
                {"id": "out", "type": "python", "function": f"{__name__}:nul_output"},
                {"id": "err", "type": "python", "function": f"{__name__}:nul_error"},
                {"id": "after", "type": "transform", "value": 1, "trigger_rule": "all_done"},
            ],
        }
    )
    result = engine.run(wf)
    assert result.status == "failed"
    error = result.block("out").error
    assert error is not None and error["type"] == "OutputNotSerializable"
    assert "NUL character" in error["message"]
    assert result.block("err").error == {"type": "ValueError", "message": "bad \\x00 byte"}
    assert result.block("after").status == "completed"
    assert [x.message for x in engine.logs(result.run_id, "err")] == ["line with \\x00 inside"]


def test_a_signal_payload_with_nul_is_refused(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {"id": "sig", "blocks": [{"id": "w", "type": "wait_for_signal", "signal": "go"}]}
    )
    queued = engine.start(wf)
    with pytest.raises(InvalidInputError, match="NUL character"):
        engine.signal(queued.run_id, "go", {"k": "x\x00"})


def lone_surrogate() -> str:
    return "\ud800x"


def test_an_output_the_store_refuses_fails_the_block_instead_of_stalling_the_run(
    engine: flowforge.Engine, store_url: str
) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "refused",
            "blocks": [
                {"id": "odd", "type": "python", "function": f"{__name__}:lone_surrogate"},
                {
                    "id": "after",
                    "type": "transform",
                    "value": 1,
                    "trigger_rule": "all_done",
                    "depends_on": ["odd"],
                },
            ],
        }
    )
    result = engine.run(wf)  # before: the worker retried the refused commit forever
    assert result.block("after").status == "completed"
    if store_url.startswith("postgresql"):  # JSONB refuses a lone surrogate; SQLite keeps it
        error = result.block("odd").error
        assert error is not None and error["type"] == "StoreRefused"
        assert result.status == "failed"
