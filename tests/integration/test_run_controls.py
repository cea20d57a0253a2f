"""cancel, terminate, pause, resume and retry of runs (SPEC 3).

A run in progress is driven by ``Engine.run_async`` in a background task (or ``Engine.run`` in
a thread); the test controls it through the same engine, as a program embedding flowforge does.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from integration_kit import async_wait_until, has_event, types_of, wait_until

import flowforge
from flowforge.errors import InvalidStateError


def _gated(gate: asyncio.Event, log: list[str]) -> flowforge.Workflow:
    """first (waits for ``gate``) -> second; plus an independent ``side`` block."""
    wf = flowforge.Workflow("gated")

    @wf.block()
    async def first() -> str:
        log.append("first started")
        try:
            await gate.wait()
        except asyncio.CancelledError:
            log.append("first canceled")
            raise
        log.append("first done")
        return "one"

    @wf.block()
    def second(first: str) -> str:
        log.append("second done")
        return first + "+two"

    return wf


async def _start(engine: flowforge.Engine, wf: flowforge.Workflow) -> tuple[str, asyncio.Task]:
    created: list[str] = []
    task = asyncio.create_task(engine.run_async(wf, on_created=created.append))
    await async_wait_until(lambda: created, what="the run to be created")
    run_id = created[0]
    await async_wait_until(
        lambda: has_event(engine, run_id, "block.started", "first"), what="block 'first' to start"
    )
    return run_id, task


def _ended(log: list[str]) -> list[str]:
    return [entry for entry in log if entry != "first started"]


async def _start_running(
    engine: flowforge.Engine, wf: flowforge.Workflow, log: list[str]
) -> tuple[str, asyncio.Task]:
    """Start the run and wait until block 'first' is really executing (not just claimed)."""
    run_id, task = await _start(engine, wf)
    await async_wait_until(lambda: "first started" in log, what="block 'first' to execute")
    return run_id, task


async def test_cancel_stops_the_running_block_and_ends_the_run_canceled(
    engine: flowforge.Engine,
) -> None:
    engine.cancel_grace = 0.2  # the block ignores ctx.cancelled: it is stopped after the grace
    log: list[str] = []
    run_id, task = await _start_running(engine, _gated(asyncio.Event(), log), log)

    canceled = engine.cancel(run_id)
    result = await asyncio.wait_for(task, 5)

    assert canceled.status == result.status == "canceled"
    record = engine.get(run_id)
    assert record.status == "canceled"
    assert record.block("first").status == "canceled"
    assert record.block("second").status in ("pending", "skipped")
    assert _ended(log) == ["first canceled"]
    assert types_of(engine.events(run_id))[-1] == "run.canceled"


async def test_terminate_ends_the_run_terminated_with_its_reason(engine: flowforge.Engine) -> None:
    log: list[str] = []
    run_id, task = await _start(engine, _gated(asyncio.Event(), log))

    engine.terminate(run_id, reason="operator said so")
    result = await asyncio.wait_for(task, 5)

    assert result.status == "terminated"
    record = engine.get(run_id)
    assert (record.status, record.failure_reason) == ("terminated", "operator said so")
    assert record.block("first").status == "canceled"
    assert "run.terminated" in types_of(engine.events(run_id))


def test_cancel_from_another_thread_stops_a_run_in_progress(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("threaded")
    stop = threading.Event()

    @wf.block()
    def spin(ctx: flowforge.BlockContext) -> None:
        while not ctx.cancelled and not stop.is_set():
            time.sleep(0.01)

    results: list[flowforge.RunResult] = []
    runner = threading.Thread(target=lambda: results.append(engine.run(wf)))
    runner.start()
    try:
        wait_until(
            lambda: (
                engine.list(workflow_id="threaded")
                and has_event(
                    engine, engine.list(workflow_id="threaded")[0].run_id, "block.started"
                )
            ),
            what="the block to start",
        )
        run_id = engine.list(workflow_id="threaded")[0].run_id
        engine.cancel(run_id)
        runner.join(5)
    finally:
        stop.set()
        runner.join(5)
    assert not runner.is_alive()
    assert results[0].status == "canceled"
    assert engine.get(run_id).block("spin").status == "canceled"


async def test_pause_lets_the_running_block_finish_and_starts_nothing_until_resumed(
    engine: flowforge.Engine,
) -> None:
    gate = asyncio.Event()
    log: list[str] = []
    run_id, task = await _start(engine, _gated(gate, log))

    assert engine.pause(run_id).status == "paused"
    gate.set()
    await async_wait_until(
        lambda: has_event(engine, run_id, "block.completed", "first"),
        what="block 'first' to finish while paused",
    )
    record = engine.get(run_id)
    assert record.status == "paused"
    assert record.block("second").status == "pending"
    assert _ended(log) == ["first done"]

    assert engine.unpause(run_id).status in ("running", "completed")
    result = await asyncio.wait_for(task, 5)
    assert result.status == "completed"
    assert result.outputs == {"second": "one+two"}
    types = types_of(engine.events(run_id))
    assert types.index("run.paused") < types.index("run.resumed") < types.index("run.completed")


async def test_retry_that_comes_due_while_paused_runs_promptly_after_resume(
    engine: flowforge.Engine,
) -> None:
    wf = flowforge.Workflow("paused-retry")
    attempts: list[int] = []

    @wf.block(retry={"max_attempts": 2, "initial_interval": "100ms", "jitter": False})
    async def first(ctx: flowforge.BlockContext) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("once")
        return ctx.attempt

    created: list[str] = []
    task = asyncio.create_task(engine.run_async(wf, on_created=created.append))
    await async_wait_until(lambda: created and has_event(engine, created[0], "block.retrying"))
    run_id = created[0]
    engine.pause(run_id)
    await asyncio.sleep(0.4)  # the retry comes due while the run is paused
    assert attempts == [1]
    engine.unpause(run_id)
    result = await asyncio.wait_for(task, 3)
    assert (result.status, attempts) == ("completed", [1, 2])


def _fails_until_fixed(fixed: list[bool], calls: dict[str, int]) -> flowforge.Workflow:
    wf = flowforge.Workflow("fixable")

    @wf.block()
    def prepare() -> int:
        calls["prepare"] += 1
        return 10

    @wf.block()
    def compute(prepare: int) -> int:
        calls["compute"] += 1
        if not fixed:
            raise RuntimeError("not fixed yet")
        return prepare * 2

    @wf.block()
    def publish(compute: int) -> str:
        calls["publish"] += 1
        return f"published {compute}"

    return wf


def test_retry_of_a_failed_run_keeps_completed_blocks_and_reruns_the_rest(
    engine: flowforge.Engine,
) -> None:
    fixed: list[bool] = []
    calls = {"prepare": 0, "compute": 0, "publish": 0}
    wf = _fails_until_fixed(fixed, calls)
    failed = engine.run(wf)
    assert failed.status == "failed"
    assert failed.block("publish").status == "skipped"

    fixed.append(True)
    assert engine.retry(failed.run_id).status == "running"
    result = engine.resume(failed.run_id)

    assert result.status == "completed"
    assert result.failure_reason is None
    assert result.outputs == {"publish": "published 20"}
    assert calls == {"prepare": 1, "compute": 2, "publish": 1}
    assert result.block("prepare").output == 10
    types = types_of(engine.events(failed.run_id))
    assert types.count("run.failed") == 1 and types[-1] == "run.completed"
    assert types_of(engine.events(failed.run_id), "prepare").count("block.started") == 1


def test_run_retried_by_another_engine_is_resumed_by_the_engine_that_ran_it(
    engine: flowforge.Engine, store_url: str
) -> None:
    fixed: list[bool] = []
    calls = {"prepare": 0, "compute": 0, "publish": 0}
    failed = engine.run(_fails_until_fixed(fixed, calls))
    fixed.append(True)
    with flowforge.Engine(store_url) as other:
        other.retry(failed.run_id)
    # this engine still remembers the run as failed: the retry's task must not be dropped
    result = engine.resume(failed.run_id)
    assert (result.status, result.outputs) == ("completed", {"publish": "published 20"})
    assert calls == {"prepare": 1, "compute": 2, "publish": 1}


async def test_retry_of_a_canceled_run_reruns_the_canceled_block(
    engine: flowforge.Engine,
) -> None:
    engine.cancel_grace = 0.2
    gate = asyncio.Event()
    log: list[str] = []
    wf = _gated(gate, log)
    run_id, task = await _start(engine, wf)
    engine.cancel(run_id)
    assert (await asyncio.wait_for(task, 5)).status == "canceled"

    gate.set()
    assert engine.retry(run_id).status == "running"
    result = await asyncio.wait_for(engine.resume_async(run_id), 5)
    assert (result.status, result.outputs) == ("completed", {"second": "one+two"})
    assert _ended(log) == ["first canceled", "first done", "second done"]


def test_retry_of_a_timed_out_run_continues_it(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("slowpoke", settings={"timeout": "300ms"})
    slow = [True]

    @wf.block()
    def quick() -> str:
        return "q"

    @wf.block()
    async def sometimes_slow(quick: str) -> str:
        if slow:
            await asyncio.sleep(30)
        return quick + "s"

    timed_out = engine.run(wf)
    assert timed_out.status == "timed_out"
    slow.clear()
    engine.retry(timed_out.run_id)
    result = engine.resume(timed_out.run_id)
    assert (result.status, result.outputs) == ("completed", {"sometimes_slow": "qs"})


@pytest.mark.parametrize("action", ["cancel", "terminate", "pause", "unpause", "retry"])
def test_control_of_a_completed_run_is_refused(engine: flowforge.Engine, action: str) -> None:
    wf = flowforge.Workflow.from_dict({"id": "done", "blocks": [{"id": "a", "type": "noop"}]})
    run_id = engine.run(wf).run_id
    with pytest.raises(InvalidStateError):
        getattr(engine, action)(run_id)
    assert engine.get(run_id).status == "completed"


def test_unpause_of_a_failed_run_is_refused(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow.from_dict({"id": "bad", "blocks": [{"id": "a", "type": "fail"}]})
    run_id = engine.run(wf).run_id
    with pytest.raises(InvalidStateError):
        engine.unpause(run_id)
    assert engine.get(run_id).status == "failed"


def test_control_of_an_unknown_run_is_not_found(engine: flowforge.Engine) -> None:
    with pytest.raises(flowforge.NotFoundError):
        engine.cancel("run_does_not_exist")


async def test_cancel_from_another_engine_stops_the_run(
    engine: flowforge.Engine, store_url: str
) -> None:
    engine.cancel_grace = 0.2  # the block ignores ctx.cancelled: stopped after the grace
    log: list[str] = []
    run_id, task = await _start_running(engine, _gated(asyncio.Event(), log), log)
    with flowforge.Engine(store_url) as other:
        assert other.cancel(run_id).status == "canceled"
    try:
        result = await asyncio.wait_for(task, 3)
    finally:
        task.cancel()
    assert result.status == "canceled"
    assert _ended(log) == ["first canceled"]  # the running block was stopped in its process


async def test_cancel_gives_a_running_block_its_grace_period_to_clean_up(
    store_url: str,
) -> None:
    log: list[str] = []
    wf = flowforge.Workflow("graceful")

    @wf.block()
    async def cleaner(ctx) -> str:  # type: ignore[no-untyped-def]
        log.append("first started")
        while not ctx.cancelled:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # some cleanup that takes a moment
        log.append("cleaned up")
        return "done"

    with flowforge.Engine(store_url, cancel_grace=5.0) as engine:
        created: list[str] = []
        task = asyncio.create_task(engine.run_async(wf, on_created=created.append))
        await async_wait_until(lambda: "first started" in log, what="the block to start")
        engine.cancel(created[0])
        result = await asyncio.wait_for(task, 5)
    assert result.status == "canceled"
    assert log == ["first started", "cleaned up"]


async def test_terminate_stops_a_running_block_at_once(store_url: str) -> None:
    log: list[str] = []
    wf = flowforge.Workflow("abrupt")

    @wf.block()
    async def stubborn(ctx) -> str:  # type: ignore[no-untyped-def]
        log.append("first started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            log.append("stopped")
            raise
        return "never"

    with flowforge.Engine(store_url, cancel_grace=5.0) as engine:
        created: list[str] = []
        task = asyncio.create_task(engine.run_async(wf, on_created=created.append))
        await async_wait_until(lambda: "first started" in log, what="the block to start")
        began = time.monotonic()
        engine.terminate(created[0], reason="operator said so")
        result = await asyncio.wait_for(task, 5)
        took = time.monotonic() - began
    assert result.status == "terminated"
    assert log == ["first started", "stopped"]
    assert took < 2
