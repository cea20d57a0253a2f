"""What an unhandled failure does to the rest of the run: ``settings.fail_fast`` (SPEC 2.1)."""

from __future__ import annotations

import asyncio
import time

import flowforge


def _workflow(fail_fast: bool, slow_seconds: float) -> tuple[flowforge.Workflow, list[str]]:
    wf = flowforge.Workflow("branches", settings={"fail_fast": fail_fast})
    seen: list[str] = []

    @wf.block()
    async def slow() -> str:
        try:
            await asyncio.sleep(slow_seconds)
        except asyncio.CancelledError:
            seen.append("slow canceled")
            raise
        seen.append("slow finished")
        return "slow done"

    @wf.block()
    async def boom() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("boom")

    @wf.block(depends_on=["slow"])
    def after_slow(slow: str) -> str:
        seen.append("after_slow ran")
        return slow + "!"

    @wf.block(depends_on=["boom"], trigger_rule="one_failed")
    async def on_error() -> str:
        await asyncio.sleep(0.1)  # still running while the rest of the run is torn down
        seen.append("on_error ran")
        return "handled"

    @wf.block(depends_on=["slow", "boom"], trigger_rule="all_done")
    def cleanup() -> str:
        seen.append("cleanup ran")
        return "clean"

    return wf, seen


def test_fail_fast_cancels_running_siblings_and_skips_pending_blocks_but_runs_handlers(
    engine: flowforge.Engine,
) -> None:
    wf, seen = _workflow(fail_fast=True, slow_seconds=10)
    started = time.monotonic()
    result = engine.run(wf)
    assert time.monotonic() - started < 2

    assert result.status == "failed"
    assert result.failure_reason is not None and "boom" in result.failure_reason
    record = engine.get(result.run_id)
    statuses = {b.block_id: b.status for b in record.blocks}
    assert statuses == {
        "slow": "canceled",
        "boom": "failed",
        "after_slow": "skipped",
        "on_error": "completed",
        "cleanup": "completed",
    }
    assert "slow canceled" in seen and "after_slow ran" not in seen
    assert record.block("on_error").output == "handled"
    assert record.outputs is None


def test_without_fail_fast_other_branches_finish_and_the_run_fails(
    engine: flowforge.Engine,
) -> None:
    wf, seen = _workflow(fail_fast=False, slow_seconds=0.3)
    result = engine.run(wf)

    assert result.status == "failed"
    assert result.failure_reason == "block 'boom' failed: RuntimeError: boom"
    statuses = {b.block_id: b.status for b in engine.get(result.run_id).blocks}
    assert statuses == {
        "slow": "completed",
        "boom": "failed",
        "after_slow": "completed",
        "on_error": "completed",
        "cleanup": "completed",
    }
    assert engine.get(result.run_id).block("after_slow").output == "slow done!"
    assert seen.index("slow finished") < seen.index("after_slow ran")


def test_fail_fast_stops_retries_of_other_blocks(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("fast-retries", settings={"fail_fast": True})
    calls = []

    @wf.block(retry={"max_attempts": 10, "initial_interval": "5s"})
    async def retried() -> None:
        calls.append(1)
        raise ConnectionError("down")

    @wf.block()
    async def boom() -> None:
        await asyncio.sleep(0.1)
        raise RuntimeError("boom")

    started = time.monotonic()
    result = engine.run(wf)
    assert time.monotonic() - started < 2
    assert result.status == "failed"
    assert len(calls) == 1
    assert engine.get(result.run_id).block("retried").status == "canceled"
