"""Issue 3's multi-worker crash test: ``flowforge worker`` processes SIGKILLed at random while
they run 200 runs of a ten-block workflow, and replaced.

PostgreSQL: 4 workers; SQLite: 2. The workflow (``chaos/chaos.yaml``) has a chain, a fan-out
joined later, a block that fails twice before it succeeds, a durable wait and a signal wait whose
payload — sent by the test, to some runs before their block waits, to others once it waits, to
the rest at a random instant — flows into the outputs. A quarter of the runs is queued before
the workers start, the rest at a steady pace while they work. Every 2-4 s a random worker is
killed with SIGKILL (a third of the time two at once, as when a host goes down) and replaced.
The test fails early when no event is committed for 20 s. At the end, read from the store:

- every run completed with exactly the outputs its parameter gives;
- every block completed once: one ``block.completed`` event and one completed ``block_runs``
  row, and no ``block.started`` after it;
- no stale commit accepted: the completed attempt is the block's last started attempt, and
  every earlier attempt failed with ``WorkerLost`` (or the flaky block's own error);
- every block that was running on a killed worker was taken over, and started again, within
  lease + 5 s of the kill.

A second test makes the rarest case of the first certain: two workers that each lease the
same run die together, and one claim finds both expired leases.

Knobs of the first test (environment): FLOWFORGE_CHAOS_SEED replays a choice of victims and
instants (the seed is printed); FLOWFORGE_CHAOS_CONCURRENCY sets the workers' --concurrency
(default 16); FLOWFORGE_CHAOS_QUEUE_OVER the seconds over which the runs after the first quarter
are queued (0: all at once). Worker logs and the events of every run (``events.json``) are left
in the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import chaos_kit as kit
import pytest
from cli_runner import Cli, wait_for

import flowforge

LEASE = 2.0
RUNS = 200
UPFRONT = RUNS // 4
QUEUE_OVER = {"postgresql": 20.0, "sqlite": 25.0}
DEADLINE = 240.0  # seconds for every run to end once the workers started; they take ~30
KILL_EVERY = (2.0, 4.0)
DOUBLE_KILLS = 1 / 3  # the share of kills that take two workers at once
STALL = 20.0  # seconds without a new event in the store: something is stuck
CLI_SIGNALS = 3  # signals sent with `flowforge runs signal` (~1 s each); the others with
# Engine.signal


class Signals:
    """Sends each run its signal: right after it is queued (n % 4 == 0), once its gate waits
    (n % 4 in (1, 2)), or 0-3 s after it is queued (n % 4 == 3)."""

    def __init__(self, engine: flowforge.Engine, cli: Cli) -> None:
        self.engine, self.cli = engine, cli
        self.once_waiting: dict[str, int] = {}
        self.at: dict[str, tuple[float, int]] = {}
        self.by_cli = 0
        self.sent = 0
        self.errors: list[str] = []

    def queued(self, run_id: str, n: int, rng: random.Random) -> None:
        if n % 4 == 0:
            self.send(run_id, n)
        elif n % 4 == 3:
            self.at[run_id] = (time.monotonic() + rng.uniform(0.0, 3.0), n)
        else:
            self.once_waiting[run_id] = n

    def send_due(self, store: kit.StoreReader) -> None:
        if self.once_waiting:
            for run_id in sorted(store.waiting_gates() & set(self.once_waiting)):
                self.send(run_id, self.once_waiting.pop(run_id))
        now = time.monotonic()
        for run_id, (at, n) in list(self.at.items()):
            if now >= at:
                self.send(run_id, n)
                del self.at[run_id]

    def send(self, run_id: str, n: int) -> None:
        self.sent += 1
        payload = kit.payload(n)
        if self.by_cli < CLI_SIGNALS and n % 4 == 1:
            self.by_cli += 1
            done = self.cli("runs", "signal", run_id, kit.SIGNAL, "--payload", json.dumps(payload))
            if done.returncode == 0:
                return
            self.errors.append(str(done))  # and sent again below, for the run to go on
        self.by_engine(run_id, payload)

    def by_engine(self, run_id: str, payload: dict[str, int]) -> None:
        """``Engine.signal``; an error is recorded (the test fails on it at the end, after its
        other checks) and the signal sent again, so that the run can still complete."""
        for _ in range(20):
            try:
                self.engine.signal(run_id, kit.SIGNAL, payload)
                return
            except Exception as error:
                self.errors.append(f"Engine.signal({run_id}) raised {error!r}")
                if type(error).__name__ != "StaleWriteError":
                    raise
                time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE + 150)
def test_workers_killed_at_random_lose_no_run_and_commit_nothing_twice(
    tmp_path: Path, store_url: str
) -> None:
    dialect = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    worker_count = 4 if dialect == "postgresql" else 2
    concurrency = int(os.environ.get("FLOWFORGE_CHAOS_CONCURRENCY", "16"))
    queue_over = float(os.environ.get("FLOWFORGE_CHAOS_QUEUE_OVER", QUEUE_OVER[dialect]))
    seed = int(os.environ.get("FLOWFORGE_CHAOS_SEED", random.SystemRandom().randrange(10**6)))
    rng = random.Random(seed)
    print(
        f"chaos seed {seed} (replay with FLOWFORGE_CHAOS_SEED={seed}): {worker_count} workers "
        f"of {concurrency} slots, {RUNS} runs ({UPFRONT} at once, the others over "
        f"{queue_over:g}s), lease {LEASE:g}s"
    )

    cli = Cli(tmp_path, database_url=store_url)
    # the workers import the blocks' functions from the workflow file's directory
    worker = ["worker", "--lease", str(LEASE), "--concurrency", str(concurrency), "--quiet"]
    workers = kit.Workers(cli.command(*worker), cli.env, tmp_path, tmp_path / "logs")
    store = kit.StoreReader(store_url)
    params: dict[str, int] = {}
    try:
        with flowforge.Engine(store_url) as engine:
            engine.apply(flowforge.load(kit.WORKFLOW_FILE))
            signals = Signals(engine, cli)

            def queue(n: int) -> None:
                run_id = engine.start("chaos", {"n": n}).run_id
                params[run_id] = n
                signals.queued(run_id, n, rng)

            for n in range(UPFRONT):
                queue(n)
            try:
                for _ in range(worker_count):
                    workers.start()
                started = time.monotonic()
                took = _chaos(store, workers, signals, queue, started, queue_over, rng)
            finally:
                try:
                    codes = workers.stop()
                finally:
                    workers.kill_all()
        runs, events, attempts = store.runs(), store.events(), store.attempts()
        leftover = store.leftover_tasks()
    finally:
        store.close()
    (tmp_path / "events.json").write_text(
        json.dumps({run_id: [vars(e) for e in log] for run_id, log in events.items()})
    )

    report = kit.check(runs, events, attempts, workers.kills, LEASE, params)
    print(
        f"all {RUNS} runs ended {took:.1f}s after the workers started; {len(workers.kills)} "
        f"kills (worker ages {', '.join(f'{k.age:.1f}' for k in workers.kills)}s); "
        f"{report.orphans} blocks orphaned, taken over after {kit.summary(report.reclaims)}, "
        f"started again after {kit.summary(report.recoveries)}; attempts per block: "
        f"{dict(report.attempts)}; signals: {dict(report.signals)}; tasks left: {len(leftover)}"
    )
    failures = [
        *workers.died,
        *([kit.describe(report, events, workers.kills)] if report.problems else []),
        *signals.errors,
    ]
    if signals.sent != RUNS:
        failures.append(f"{signals.sent} signals sent for {RUNS} runs")
    if leftover:
        failures.append(f"tasks left once every run completed: {leftover}")
    if codes != [0] * len(codes):
        failures.append(f"exit codes of the SIGTERMed workers: {codes}")
    assert not failures, "\n".join(failures)
    assert len(report.signals) == 2, f"signals before and after the gate waits: {report.signals}"
    assert len(workers.kills) >= 4, "too few kills: the runs ended before the chaos"
    assert report.orphans >= len(workers.kills) // 2, "the kills rarely landed while blocks ran"


def _chaos(
    store: kit.StoreReader,
    workers: kit.Workers,
    signals: Signals,
    queue: Callable[[int], None],
    started: float,
    queue_over: float,
    rng: random.Random,
) -> float:
    """Queue the other runs at a steady pace, signal them, kill and replace workers, until
    every run ended; returns how long that took."""
    next_n = UPFRONT
    next_kill = started + rng.uniform(*KILL_EVERY)
    progress = (-1, time.monotonic())  # events in the store, and since when
    while True:
        now = time.monotonic()
        try:
            while next_n < RUNS and (
                queue_over <= 0
                or now - started >= (next_n - UPFRONT) * queue_over / (RUNS - UPFRONT)
            ):
                queue(next_n)
                next_n += 1
            signals.send_due(store)
        except Exception as error:
            statuses = store.statuses()
            unfinished = {r: s for r, s in statuses.items() if s not in kit.ENDED}
            pytest.fail(kit.unfinished(store, unfinished, workers, f"{error!r}"))
        statuses = store.statuses()
        unfinished = {r: s for r, s in statuses.items() if s not in kit.ENDED}
        if next_n == RUNS and not unfinished:
            return time.monotonic() - started
        count = store.event_count()
        if count != progress[0]:
            progress = (count, now)
        elif now - progress[1] > STALL:
            why = f"no event committed for {STALL:g}s (a worker stuck?)"
            pytest.fail(kit.unfinished(store, unfinished, workers, why))
        if now - started > DEADLINE:
            why = f"not every run ended within {DEADLINE:g}s"
            pytest.fail(kit.unfinished(store, unfinished, workers, why))
        workers.check_alive()
        if now >= next_kill:
            workers.kill(rng, 2 if len(workers.live) > 1 and rng.random() < DOUBLE_KILLS else 1)
            next_kill = now + rng.uniform(*KILL_EVERY)
        time.sleep(0.1)


TWO_LEASES_MODULE = """
import time

def quick(ctx):
    time.sleep(0.5)
    return ctx.block_id

def long(ctx):
    time.sleep(60 if ctx.attempt == 1 else 0.1)  # the attempt that is killed, then a quick one
    return ctx.block_id
"""

TWO_LEASES_FLOW = """
id: two-leases
blocks:
  - {id: a, type: python, function: "two_leases:quick"}
  - {id: x, type: python, function: "two_leases:quick", depends_on: [a]}
  - {id: y, type: python, function: "two_leases:quick", depends_on: [a]}
  - {id: x2, type: python, function: "two_leases:long", depends_on: [x]}
  - {id: y2, type: python, function: "two_leases:long", depends_on: [y]}
"""


@pytest.mark.slow
def test_two_workers_killed_together_while_leasing_one_run_are_both_taken_over(
    tmp_path: Path, store_url: str
) -> None:
    """The chaos test's rarest case, made certain: two workers with one slot each split a run
    (each runs one branch under its own lease on the run) and die at once; the next worker
    comes once both leases expired, finds both in one claim, and recovers both blocks."""
    cli = Cli(tmp_path, database_url=store_url)
    cli.module("two_leases", TWO_LEASES_MODULE)
    path = cli.write("two_leases.yaml", TWO_LEASES_FLOW)

    def command(concurrency: int) -> list[str]:
        return cli.command("worker", "--lease", str(LEASE), "-c", str(concurrency), "--quiet")

    one_slot = kit.Workers(command(1), cli.env, tmp_path, tmp_path / "logs")
    taker = kit.Workers(command(16), cli.env, tmp_path, tmp_path / "logs-taker")
    with flowforge.Engine(store_url) as engine:
        run_id = engine.start(flowforge.load(path)).run_id
        try:
            one_slot.start()
            one_slot.start()

            def long_blocks() -> dict[str, str]:
                return {
                    e.block_id: e.data["worker"]
                    for e in engine.events(run_id)
                    if e.type == "block.started" and e.block_id in ("x2", "y2")
                }

            holders = wait_for(lambda: len(long_blocks()) == 2 and long_blocks(), 30, "x2, y2")
            assert holders["x2"] != holders["y2"], f"the run was not split: {holders}"
            kills = one_slot.kill(random.Random(0), 2, replace=False)
            time.sleep(LEASE + 1)  # both leases expired: one claim can find both
            taker.start()
            deadline = time.monotonic() + LEASE + 15
            while engine.get(run_id).status != "completed":
                if time.monotonic() > deadline:
                    events = "\n".join(
                        f"{e.seq} {e.type} {e.block_id} {e.data}" for e in engine.events(run_id)
                    )
                    pytest.fail(
                        f"the run was not taken over {LEASE + 15:g}s after the taker started "
                        f"(workers {[k.pid for k in kills]} killed); CPU seconds of the taker: "
                        f"{taker.cpu_seconds()}\n{events}"
                    )
                time.sleep(0.1)
            lost = [
                e.block_id
                for e in engine.events(run_id)
                if e.type == "block.retrying" and e.data["error"]["type"] == "WorkerLost"
            ]
        finally:
            for workers in (one_slot, taker):
                workers.kill_all()
    assert sorted(lost) == ["x2", "y2"]
