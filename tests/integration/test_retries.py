"""Retry policies: attempts, non-retryable errors, exhaustion and backoff (SPEC 2.1)."""

from __future__ import annotations

import time

import pytest
from integration_kit import types_of

import flowforge


def _flaky(failures: int, calls: list[float]) -> flowforge.Workflow:
    """A workflow whose block fails ``failures`` times, then returns "ok"."""
    wf = flowforge.Workflow("flaky")

    @wf.block(retry={"max_attempts": 3, "initial_interval": "0.05s", "jitter": False})
    def shaky() -> str:
        calls.append(time.monotonic())
        if len(calls) <= failures:
            raise ConnectionError(f"attempt {len(calls)} failed")
        return "ok"

    return wf


def test_block_failing_twice_then_succeeding_completes_on_its_third_attempt(
    engine: flowforge.Engine,
) -> None:
    calls: list[float] = []
    result = engine.run(_flaky(2, calls))

    assert result.status == "completed"
    assert result.outputs == {"shaky": "ok"}
    block = result.block("shaky")
    assert (block.status, block.attempts, block.error) == ("completed", 3, None)
    events = engine.events(result.run_id)
    assert types_of(events, "shaky") == [
        "block.started",
        "block.retrying",
        "block.started",
        "block.retrying",
        "block.started",
        "block.completed",
    ]
    retrying = [e for e in events if e.type == "block.retrying"]
    assert [e.data["error"] for e in retrying] == [
        {"type": "ConnectionError", "message": "attempt 1 failed"},
        {"type": "ConnectionError", "message": "attempt 2 failed"},
    ]
    assert engine.get(result.run_id).block("shaky").attempts == 3


def test_exhausted_retries_fail_the_block_with_the_last_error(engine: flowforge.Engine) -> None:
    calls: list[float] = []
    result = engine.run(_flaky(5, calls))

    assert result.status == "failed"
    assert len(calls) == 3
    block = engine.get(result.run_id).block("shaky")
    assert (block.status, block.attempts) == ("failed", 3)
    assert block.error == {"type": "ConnectionError", "message": "attempt 3 failed"}
    assert result.failure_reason is not None and "attempt 3 failed" in result.failure_reason
    assert types_of(engine.events(result.run_id)).count("block.retrying") == 2


def test_non_retryable_error_type_stops_after_one_attempt(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("no-retry")
    calls = []

    @wf.block(
        retry={"max_attempts": 5, "initial_interval": "10ms", "non_retryable_errors": ["KeyError"]}
    )
    def lookup() -> None:
        calls.append(1)
        raise KeyError("missing")

    result = engine.run(wf)
    assert result.status == "failed"
    assert len(calls) == 1
    block = result.block("lookup")
    assert (block.attempts, block.error["type"]) == (1, "KeyError")  # type: ignore[index]
    assert "block.retrying" not in types_of(engine.events(result.run_id))


def test_non_retryable_error_raised_by_the_block_is_not_retried(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("give-up")
    calls = []

    @wf.block(retry={"max_attempts": 5, "initial_interval": "10ms"})
    def refuse() -> None:
        calls.append(1)
        raise flowforge.NonRetryableError("bad input", error_type="BadInput")

    result = engine.run(wf)
    assert result.status == "failed"
    assert len(calls) == 1
    assert result.block("refuse").error == {"type": "BadInput", "message": "bad input"}


@pytest.mark.parametrize("jitter", [False, True])
def test_backoff_waits_at_least_the_configured_interval_between_attempts(
    engine: flowforge.Engine, jitter: bool
) -> None:
    wf = flowforge.Workflow("backoff")
    calls: list[float] = []

    @wf.block(
        retry={
            "max_attempts": 3,
            "initial_interval": "200ms",
            "backoff_coefficient": 2,
            "jitter": jitter,
        }
    )
    def shaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "ok"

    result = engine.run(wf)
    assert result.status == "completed"
    first_gap, second_gap = calls[1] - calls[0], calls[2] - calls[1]
    assert 0.2 <= first_gap < 0.2 * 1.25 + 0.5
    assert 0.4 <= second_gap < 0.4 * 1.25 + 0.5


def test_workflow_default_retry_policy_applies_to_every_block(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow(
        "defaults", settings={"retry": {"max_attempts": 2, "initial_interval": "10ms"}}
    )
    calls = []

    @wf.block()
    def once_broken() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first try")
        return len(calls)

    result = engine.run(wf)
    assert result.status == "completed"
    assert result.block("once_broken").attempts == 2
