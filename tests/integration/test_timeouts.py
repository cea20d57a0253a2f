"""Per-attempt timeouts (error ``Timeout``, retryable) and the run timeout (SPEC 2.1, 3)."""

from __future__ import annotations

import asyncio
import time

from integration_kit import types_of

import flowforge


def test_attempt_exceeding_its_timeout_fails_with_timeout_within_a_second_of_the_limit(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow("slow")

    @wf.block(timeout="1s")
    async def sleepy() -> str:
        await asyncio.sleep(10)
        return "too late"

    started = time.monotonic()
    result = engine.run(wf)
    assert time.monotonic() - started < 3
    assert result.status == "failed"
    block = engine.get(result.run_id).block("sleepy")
    assert block.status == "failed"
    assert block.error is not None and block.error["type"] == "Timeout"
    assert block.started_at is not None and block.finished_at is not None
    assert 1.0 <= (block.finished_at - block.started_at).total_seconds() < 2.0


def test_sync_block_exceeding_its_timeout_does_not_hold_up_the_run(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow("slow-thread")

    @wf.block(timeout="300ms")
    def blocking(ctx: flowforge.BlockContext) -> None:
        # a well-behaved sync block looks at its cancellation now and then
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ctx.raise_if_cancelled()
            time.sleep(0.01)

    started = time.monotonic()
    result = engine.run(wf)
    assert time.monotonic() - started < 2
    assert result.block("blocking").error["type"] == "Timeout"  # type: ignore[index]


def test_sync_block_ignoring_its_timeout_does_not_hold_up_the_run(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow("stubborn-thread")

    @wf.block(timeout="200ms")
    def stubborn() -> None:
        time.sleep(1.5)  # a thread cannot be killed: it finishes on its own, unobserved

    started = time.monotonic()
    result = engine.run(wf)
    assert time.monotonic() - started < 1.2
    assert result.block("stubborn").error["type"] == "Timeout"  # type: ignore[index]


def test_timed_out_attempt_is_retried(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("retry-timeout")
    attempts = []

    @wf.block(timeout="200ms", retry={"max_attempts": 2, "initial_interval": "10ms"})
    async def slow_once(ctx: flowforge.BlockContext) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(10)
        return ctx.attempt

    result = engine.run(wf)
    assert result.status == "completed"
    assert result.outputs == {"slow_once": 2}
    retrying = [e for e in engine.events(result.run_id) if e.type == "block.retrying"]
    assert [e.data["error"]["type"] for e in retrying] == ["Timeout"]


def test_run_exceeding_settings_timeout_ends_timed_out(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("whole-run", settings={"timeout": "500ms"})

    @wf.block()
    async def forever() -> None:
        await asyncio.sleep(30)

    @wf.block()
    def quick() -> int:
        return 1

    started = time.monotonic()
    result = engine.run(wf)
    assert time.monotonic() - started < 3
    assert result.status == "timed_out"
    record = engine.get(result.run_id)
    assert record.status == "timed_out"
    assert record.block("forever").status == "canceled"
    assert record.block("quick").status == "completed"
    assert "run.timed_out" in types_of(engine.events(result.run_id))
