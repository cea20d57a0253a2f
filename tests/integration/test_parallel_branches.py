"""Independent blocks run in parallel, up to ``settings.max_concurrency`` (SPEC 2.1)."""

from __future__ import annotations

import asyncio
import time

from integration_kit import Interval

import flowforge


def _two_sleepers(
    settings: dict[str, object] | None, *, sync: bool
) -> tuple[flowforge.Workflow, dict[str, Interval]]:
    wf = flowforge.Workflow("parallel", settings=settings)
    intervals: dict[str, Interval] = {}

    if sync:

        @wf.block()
        def left() -> str:
            start = time.monotonic()
            time.sleep(0.3)
            intervals["left"] = Interval(start, time.monotonic())
            return "l"

        @wf.block()
        def right() -> str:
            start = time.monotonic()
            time.sleep(0.3)
            intervals["right"] = Interval(start, time.monotonic())
            return "r"
    else:

        @wf.block()
        async def left() -> str:
            start = time.monotonic()
            await asyncio.sleep(0.3)
            intervals["left"] = Interval(start, time.monotonic())
            return "l"

        @wf.block()
        async def right() -> str:
            start = time.monotonic()
            await asyncio.sleep(0.3)
            intervals["right"] = Interval(start, time.monotonic())
            return "r"

    return wf, intervals


def test_independent_sync_blocks_overlap_in_time(engine: flowforge.Engine) -> None:
    wf, intervals = _two_sleepers(None, sync=True)
    started = time.monotonic()
    result = engine.run(wf)
    elapsed = time.monotonic() - started
    assert result.status == "completed"
    assert result.outputs == {"left": "l", "right": "r"}
    assert intervals["left"].overlaps(intervals["right"])
    assert elapsed < 0.55


def test_independent_async_blocks_overlap_in_time(engine: flowforge.Engine) -> None:
    wf, intervals = _two_sleepers(None, sync=False)
    started = time.monotonic()
    result = engine.run(wf)
    assert result.status == "completed"
    assert time.monotonic() - started < 0.55
    assert intervals["left"].overlaps(intervals["right"])


def test_max_concurrency_one_runs_independent_blocks_one_after_the_other(
    engine: flowforge.Engine,
) -> None:
    wf, intervals = _two_sleepers({"max_concurrency": 1}, sync=True)
    started = time.monotonic()
    result = engine.run(wf)
    assert result.status == "completed"
    assert time.monotonic() - started >= 0.6
    assert not intervals["left"].overlaps(intervals["right"])


def test_max_concurrency_bounds_blocks_running_at_once(engine: flowforge.Engine) -> None:
    wf = flowforge.Workflow("bounded", settings={"max_concurrency": 2})
    running = 0
    peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    for index in range(6):

        async def block(index: int = index) -> int:
            await work()
            return index

        wf.block(id=f"b{index}")(block)
    result = engine.run(wf)
    assert result.status == "completed"
    assert peak == 2
    assert result.outputs == {f"b{i}": i for i in range(6)}
