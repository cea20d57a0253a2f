"""``continue_on_failure``: a tolerated failure does not fail the run (SPEC 2.1)."""

from __future__ import annotations

import flowforge


def test_tolerated_failure_lets_the_run_complete_and_dependents_see_its_error(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "tolerant",
            "blocks": [
                {
                    "id": "optional",
                    "type": "fail",
                    "message": "no luck",
                    "continue_on_failure": True,
                },
                {
                    "id": "report",
                    "type": "transform",
                    "value": {
                        "status": "{{ blocks.optional.status }}",
                        "error": "{{ blocks.optional.error }}",
                        "output": "{{ blocks.optional.output }}",
                        "attempts": "{{ blocks.optional.attempts }}",
                        "text": "optional said: {{ blocks.optional.error.message }}",
                    },
                },
            ],
        }
    )
    result = engine.run(wf)

    assert result.status == "completed"
    assert result.failure_reason is None
    assert result.outputs == {
        "report": {
            "status": "failed",
            "error": {"type": "Failed", "message": "no luck"},
            "output": None,
            "attempts": 1,
            "text": "optional said: no luck",
        }
    }
    record = engine.get(result.run_id)
    optional = record.block("optional")
    assert (optional.status, optional.output) == ("failed", None)
    assert optional.error == {"type": "Failed", "message": "no luck"}
    assert record.outputs == result.outputs
    failed = [e for e in engine.events(result.run_id) if e.type == "block.failed"]
    assert [e.data["tolerated"] for e in failed] == [True]


def test_tolerated_failure_after_retries_keeps_the_last_error(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("tolerant-retries")

    @wf.block(continue_on_failure=True, retry={"max_attempts": 2, "initial_interval": "10ms"})
    def flaky(ctx: flowforge.BlockContext) -> None:
        raise ValueError(f"attempt {ctx.attempt}")

    @wf.block(depends_on=["flaky"])
    def next_step(flaky: object) -> str:
        return f"got {flaky!r}"

    result = engine.run(wf)
    assert result.status == "completed"
    assert result.outputs == {"next_step": "got None"}
    assert result.block("flaky").error == {"type": "ValueError", "message": "attempt 2"}
    assert result.block("flaky").attempts == 2


def test_tolerated_failure_does_not_trigger_fail_fast(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict(
        {
            "id": "tolerant-fast",
            "settings": {"fail_fast": True},
            "blocks": [
                {"id": "optional", "type": "fail", "continue_on_failure": True},
                {"id": "other", "type": "transform", "value": 1},
                {
                    "id": "last",
                    "type": "transform",
                    "value": "{{ blocks.other.output + 1 }}",
                    "depends_on": ["optional"],
                },
            ],
        }
    )
    result = engine.run(wf)
    assert result.status == "completed"
    assert result.outputs == {"last": 2}
