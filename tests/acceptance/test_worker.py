"""``flowforge worker`` processes sharing a store: they run queued runs, and stop gracefully."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_runner import Cli, wait_for

import flowforge

WORK = """
import os
import time

def step(n):
    time.sleep(0.2)
    return {"n": n * 2, "pid": os.getpid()}

def total(parts):
    return sum(part["n"] for part in parts)
"""

FLOW = """
id: shared
parameters:
  n: {type: integer, default: 1}
blocks:
  - id: a
    type: python
    function: work:step
    args: {n: "{{ params.n }}"}
  - id: b
    type: python
    function: work:step
    args: {n: "{{ params.n + 1 }}"}
  - id: sum
    type: python
    function: work:total
    args: {parts: "{{ [blocks.a.output, blocks.b.output] }}"}
"""


def _workers(cli: Cli, count: int, *extra: str) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            cli.command("worker", "--concurrency", "4", *extra),
            env=cli.env,
            cwd=cli.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


@pytest.mark.slow
def test_two_workers_run_every_queued_run_and_stop_on_sigterm(
    tmp_path: Path, store_url: str
) -> None:
    cli = Cli(tmp_path, database_url=store_url)
    cli.module("work", WORK)
    workflow = flowforge.load(cli.write("shared.yaml", FLOW))
    with flowforge.Engine(cli.database_url) as engine:
        runs = [engine.start(workflow, {"n": n}).run_id for n in range(12)]
        workers = _workers(cli, 2)
        try:
            wait_for(lambda: all(engine.get(r).status == "completed" for r in runs), 60, "the runs")
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            codes = [worker.wait(30) for worker in workers]
        results = [engine.get(run_id) for run_id in runs]
    assert codes == [0, 0]
    assert [r.outputs for r in results] == [{"sum": 2 * n + 2 * (n + 1)} for n in range(12)]
    pids = {r.block("a").output["pid"] for r in results} | {
        r.block("b").output["pid"] for r in results
    }
    assert len(pids) == 2, "both workers ran blocks"


@pytest.mark.slow
def test_sigterm_lets_a_running_block_finish_before_the_worker_exits(
    tmp_path: Path, store_url: str
) -> None:
    cli = Cli(tmp_path, database_url=store_url)
    cli.module("work", WORK.replace("time.sleep(0.2)", "time.sleep(1.5)"))
    workflow = flowforge.load(cli.write("shared.yaml", FLOW))
    with flowforge.Engine(cli.database_url) as engine:
        run_id = engine.start(workflow, {"n": 1}).run_id
        [worker] = _workers(cli, 1)
        wait_for(
            lambda: any(e.type == "block.started" for e in engine.events(run_id)),
            30,
            "a block to start",
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        record = engine.get(run_id)
        # the blocks that were running finished; what became ready after is left for others
        assert record.block("a").status == record.block("b").status == "completed"
        assert record.status == "running"
        assert record.block("sum").status == "pending"
        [successor] = _workers(cli, 1)
        try:
            wait_for(lambda: engine.get(run_id).status == "completed", 30, "the successor")
        finally:
            successor.send_signal(signal.SIGTERM)
            successor.wait(30)
        assert engine.get(run_id).outputs == {"sum": 6}


def test_an_idle_worker_starts_new_work_at_once(tmp_path: Path, store_url: str) -> None:
    """No polling on the hot path: NOTIFY (PostgreSQL) wakes an idle worker; on SQLite its
    poll of a second is the bound."""
    cli = Cli(tmp_path, database_url=store_url)
    cli.module("work", WORK)
    workflow = flowforge.load(cli.write("shared.yaml", FLOW))
    with flowforge.Engine(cli.database_url) as engine:
        engine.apply(workflow)
        [worker] = _workers(cli, 1)
        try:
            time.sleep(2.5)  # the worker is idle: past its first poll
            queued = time.monotonic()
            run_id = engine.start(workflow, {"n": 1}).run_id
            wait_for(
                lambda: any(e.type == "block.started" for e in engine.events(run_id)),
                15,
                "the first block to start",
            )
            latency = time.monotonic() - queued
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    bound = 0.5 if store_url.startswith("postgresql") else 1.5
    assert latency < bound, f"queued -> running took {latency:.2f}s"
