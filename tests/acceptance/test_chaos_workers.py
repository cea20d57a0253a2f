"""Issue 3's multi-worker crash test: ``flowforge worker`` processes SIGKILLed at random while
they run 200 runs of a ten-block workflow, and replaced.

PostgreSQL: 4 workers; SQLite: 2. The workflow (``chaos/chaos.yaml``) has a chain, a fan-out
joined later, a block that fails twice before it succeeds, a durable wait and a signal wait whose
payload — sent by the test, to some runs before their block waits, to others once it waits, to
the rest at a random instant — flows into the outputs. A quarter of the runs is queued before
the workers start, the rest at a steady pace while they work. Every 2-4 s a random worker is
killed with SIGKILL and a new one started. At the end, read from the store:

- every run completed with exactly the outputs its parameter gives;
- every block completed once: one ``block.completed`` event and one completed ``block_runs``
  row, and no ``block.started`` after it;
- no stale commit accepted: the completed attempt is the block's last started attempt, and
  every earlier attempt failed with ``WorkerLost`` (or the flaky block's own error);
- every block that was running on a killed worker was taken over, and started again, within
  lease + 5 s of the kill.

Knobs (environment): FLOWFORGE_CHAOS_SEED replays a choice of victims and instants (the seed is
printed); FLOWFORGE_CHAOS_CONCURRENCY sets the workers' --concurrency (default 16);
FLOWFORGE_CHAOS_QUEUE_OVER the seconds over which the runs after the first quarter are queued
(0: all at once). Worker logs and the events of every run (``events.json``) are left in the
test's tmp_path.
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
from cli_runner import Cli

import flowforge

LEASE = 2.0
RUNS = 200
UPFRONT = RUNS // 4
QUEUE_OVER = {"postgresql": 20.0, "sqlite": 25.0}
DEADLINE = 240.0  # seconds for every run to end once the workers started; they take ~30
KILL_EVERY = (2.0, 4.0)
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
                codes = workers.stop()
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
    while True:
        now = time.monotonic()
        while next_n < RUNS and (
            queue_over <= 0 or now - started >= (next_n - UPFRONT) * queue_over / (RUNS - UPFRONT)
        ):
            queue(next_n)
            next_n += 1
        statuses = store.statuses()
        unfinished = {r: s for r, s in statuses.items() if s not in kit.ENDED}
        if next_n == RUNS and not unfinished:
            return time.monotonic() - started
        if now - started > DEADLINE:
            pytest.fail(kit.unfinished(store, unfinished, workers, DEADLINE))
        signals.send_due(store)
        workers.check_alive()
        if now >= next_kill:
            workers.kill_one(rng)
            next_kill = now + rng.uniform(*KILL_EVERY)
        time.sleep(0.1)
