"""The multi-worker crash test's kit: the workflow, the workers it kills, the store it reads.

``test_chaos_workers.py`` drives it; everything here is plain code on real processes and the
real store (SQLite or PostgreSQL), read with SQL at the end to check the invariants.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

CHAOS_DIR = Path(__file__).parent / "chaos"
WORKFLOW_FILE = CHAOS_DIR / "chaos.yaml"
BLOCKS = ["a", "b", "c", "f1", "f2", "flaky", "nap", "gate", "join", "final"]
SIGNAL = "go"
NAP = 1.0  # seconds of the durable wait
ENDED = {"completed", "failed", "canceled", "terminated", "timed_out"}


def payload(n: int) -> dict[str, int]:
    """The signal's payload for the run of parameter n (its own, so a mix-up shows)."""
    return {"k": 7 * n + 1}


def expected_outputs(n: int) -> dict[str, Any]:
    a = n + 1
    b = 2 * a
    c = b + 3
    fan = [c * 10, c * 100, c + 1000]
    k = payload(n)["k"]
    return {"result": {"n": n, "chain": [a, b, c], "total": sum(fan) + k, "k": k}}


# -- the workers ----------------------------------------------------------------------------
@dataclass
class Kill:
    pid: int
    at: float  # time.time() right after the SIGKILL
    age: float  # how long the worker had lived


@dataclass
class Workers:
    """``flowforge worker`` processes: started, SIGKILLed at random, replaced, stopped."""

    command: list[str]
    env: dict[str, str]
    cwd: Path
    logs: Path
    live: list[tuple[subprocess.Popen[bytes], float]] = field(default_factory=list)
    every: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    died: list[str] = field(default_factory=list)
    """Workers that exited without being killed: each with its exit code and log."""
    started: int = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.logs.mkdir(exist_ok=True)
        self.started += 1
        log = open(self.logs / f"worker-{self.started}.log", "wb")  # noqa: SIM115
        with log:
            process = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        (self.logs / f"worker-{self.started}.pid").write_text(str(process.pid))
        self.live.append((process, time.time()))
        self.every.append(process)
        return process

    def kill(self, rng: random.Random, count: int = 1, replace: bool = True) -> list[Kill]:
        """SIGKILL ``count`` random live workers at once (a host going down takes several)
        and start their replacements."""
        victims = [self.live.pop(rng.randrange(len(self.live))) for _ in range(count)]
        for process, _ in victims:
            process.send_signal(signal.SIGKILL)
        at = time.time()
        kills = [Kill(process.pid, at, at - born) for process, born in victims]
        for process, _ in victims:
            process.wait(30)
            if replace:
                self.start()
        self.kills.extend(kills)
        return kills

    def check_alive(self) -> None:
        """A worker that exited by itself is a failure to report; it is replaced."""
        for process, born in list(self.live):
            code = process.poll()
            if code is not None:
                self.live.remove((process, born))
                log = self.log_of(process.pid)
                self.died.append(f"worker {process.pid} exited with {code}:\n{log}")
                self.start()

    def log_of(self, pid: int) -> str:
        for pid_file in self.logs.glob("worker-*.pid"):
            if pid_file.read_text() == str(pid):
                return pid_file.with_suffix(".log").read_text(errors="replace")[-20000:]
        return "<no log>"

    def stop(self) -> list[int | None]:
        """SIGTERM every live worker (a graceful drain) and wait; a hung one is killed.

        A worker just started gets the SIGTERM only once it announced itself: before that it
        has no handler for it yet, and would die of it instead of draining."""
        deadline = time.monotonic() + 30
        for process, _ in self.live:
            while (
                process.poll() is None
                and f"worker {process.pid} on" not in self.log_of(process.pid)
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for process, _ in self.live:
            try:
                codes.append(process.wait(30))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
                codes.append(None)
        self.live.clear()
        return codes

    def kill_all(self) -> None:
        """The safety net: no worker outlives the test, whatever happened."""
        for process in self.every:
            if process.poll() is None:
                process.kill()
                process.wait(10)

    def cpu_seconds(self) -> dict[int, float]:
        """CPU time of each live worker (a spinning one stands out)."""
        ticks = os.sysconf("SC_CLK_TCK")
        out = {}
        for process, _ in self.live:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                out[process.pid] = (int(fields[11]) + int(fields[12])) / ticks
            except (OSError, IndexError, ValueError):
                continue
        return out


# -- the store ------------------------------------------------------------------------------
def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _time(value: datetime | str) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass(frozen=True)
class Ev:
    seq: int
    type: str
    block_id: str | None
    data: dict[str, Any]
    at: float

    def __str__(self) -> str:
        stamp = datetime.fromtimestamp(self.at, UTC).strftime("%H:%M:%S.%f")[:-3]
        return f"{self.seq:>4} {stamp} {self.type:<16} {self.block_id or '':<6} {self.data}"


@dataclass(frozen=True)
class Attempt:
    block_id: str
    attempt: int
    status: str
    error: dict[str, Any] | None
    worker_id: str | None


class StoreReader:
    """Reads the store with SQL (one connection pool; closed by ``close``)."""

    def __init__(self, url: str) -> None:
        from flowforge.store.connection import create_engine

        self.engine = create_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect().execution_options(flowforge_readonly=True) as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def statuses(self) -> dict[str, str]:
        return dict(self._rows("SELECT id, status FROM runs"))

    def event_count(self) -> int:
        return int(self._rows("SELECT count(*) FROM events")[0][0])

    def waiting_gates(self) -> set[str]:
        """Runs whose gate block has waited (for its signal) at least once."""
        rows = self._rows(
            "SELECT DISTINCT run_id FROM events WHERE block_id = 'gate' AND type = 'block.waiting'"
        )
        return {r[0] for r in rows}

    def runs(self) -> dict[str, dict[str, Any]]:
        rows = self._rows("SELECT id, status, parameters, outputs, failure_reason FROM runs")
        return {
            r[0]: {
                "status": r[1],
                "parameters": _json(r[2]),
                "outputs": _json(r[3]),
                "failure_reason": r[4],
            }
            for r in rows
        }

    def events(self) -> dict[str, list[Ev]]:
        out: dict[str, list[Ev]] = defaultdict(list)
        rows = self._rows(
            "SELECT run_id, seq, type, block_id, data, created_at FROM events ORDER BY run_id, seq"
        )
        for run_id, seq, kind, block_id, data, created in rows:
            out[run_id].append(Ev(seq, kind, block_id, _json(data) or {}, _time(created)))
        return out

    def attempts(self) -> dict[str, list[Attempt]]:
        out: dict[str, list[Attempt]] = defaultdict(list)
        rows = self._rows(
            "SELECT run_id, block_id, attempt, status, error, worker_id FROM block_runs"
            " ORDER BY run_id, block_id, attempt"
        )
        for run_id, block_id, attempt, status, error, worker in rows:
            out[run_id].append(Attempt(block_id, attempt, status, _json(error), worker))
        return out

    def leftover_tasks(self) -> list[Any]:
        return self._rows("SELECT id, kind, worker_id, lease_expires_at, token FROM tasks")


def worker_pid(worker_id: str | None) -> int | None:
    """``host-PID-hex`` (the host may contain dashes) -> PID."""
    if not worker_id:
        return None
    parts = worker_id.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


# -- the invariants -------------------------------------------------------------------------
@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    bad_runs: set[str] = field(default_factory=set)
    orphans: int = 0
    reclaims: list[float] = field(default_factory=list)
    """Kill -> another worker took the orphaned attempt over (its ``block.retrying``)."""
    recoveries: list[float] = field(default_factory=list)
    """Kill -> the orphaned block's next ``block.started``."""
    attempts: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)

    def fail(self, run_id: str, message: str) -> None:
        self.bad_runs.add(run_id)
        self.problems.append(f"{run_id}: {message}")


def check(
    runs: dict[str, dict[str, Any]],
    events: dict[str, list[Ev]],
    attempts: dict[str, list[Attempt]],
    kills: Iterable[Kill],
    lease: float,
    expected_runs: dict[str, int],
) -> Report:
    """Every invariant of the test, over the whole store: a report of every violation."""
    report = Report()
    kills = list(kills)
    for run_id, n in expected_runs.items():
        run = runs.get(run_id)
        if run is None:
            report.fail(run_id, "the run is not in the store")
            continue
        if run["status"] != "completed":
            report.fail(run_id, f"status {run['status']} ({run['failure_reason']})")
        elif run["outputs"] != expected_outputs(n):
            report.fail(run_id, f"outputs {run['outputs']} != {expected_outputs(n)}")
        _check_blocks(report, run_id, events.get(run_id, []), attempts.get(run_id, []))
        _check_signal_and_timer(report, run_id, n, events.get(run_id, []))
        _check_orphans(report, run_id, events.get(run_id, []), kills, lease)
    return report


def _check_signal_and_timer(report: Report, run_id: str, n: int, events: list[Ev]) -> None:
    """One signal, the run's own; the durable wait lasted its second."""
    received = [e.data for e in events if e.type == "signal.received"]
    if [(d.get("name"), d.get("payload")) for d in received] != [(SIGNAL, payload(n))]:
        report.fail(run_id, f"signals received: {received}, expected one {payload(n)}")
    elif received[0].get("delivered_to") == "gate":
        report.signals["delivered to the waiting gate"] += 1
    else:
        report.signals["kept for the gate"] += 1
    naps = [e for e in events if e.block_id == "nap" and e.type != "block.retrying"]
    if naps and naps[-1].type == "block.completed" and naps[-1].at - naps[0].at < NAP - 0.05:
        report.fail(run_id, f"nap ended {naps[-1].at - naps[0].at:.2f}s after it started")


def _check_blocks(report: Report, run_id: str, events: list[Ev], attempts: list[Attempt]) -> None:
    by_block: dict[str, list[Ev]] = defaultdict(list)
    for event in events:
        if event.block_id:
            by_block[event.block_id].append(event)
    rows: dict[str, list[Attempt]] = defaultdict(list)
    for row in attempts:
        rows[row.block_id].append(row)
    for block_id in BLOCKS:
        log = by_block.get(block_id, [])
        started = [e.data.get("attempt") for e in log if e.type == "block.started"]
        report.attempts[block_id] += len(started)
        completed = _check_events(report, run_id, block_id, log, started)
        _check_rows(report, run_id, block_id, rows.get(block_id, []), started, completed)


def _check_events(
    report: Report, run_id: str, block_id: str, log: list[Ev], started: list[Any]
) -> Ev | None:
    """One completion, of the last attempt started, and no start after it."""
    completed = [e for e in log if e.type == "block.completed"]
    if len(completed) != 1:
        report.fail(run_id, f"{block_id}: {len(completed)} block.completed events")
    if len(started) != len(set(started)):
        report.fail(run_id, f"{block_id}: an attempt started twice: {started}")
    if not completed:
        return None
    done = completed[0]
    late = [e for e in log if e.type == "block.started" and e.seq > done.seq]
    if late:
        report.fail(run_id, f"{block_id}: started again after its completion: {late}")
    if started and done.data.get("attempt") != max(started):
        report.fail(
            run_id,
            f"{block_id}: attempt {done.data.get('attempt')} completed, but attempts "
            f"{started} started (a stale attempt's commit was accepted)",
        )
    return done


def _check_rows(
    report: Report,
    run_id: str,
    block_id: str,
    rows: list[Attempt],
    started: list[Any],
    completed: Ev | None,
) -> None:
    """One ``block_runs`` row per attempt started: the completed one, and the others failed
    with ``WorkerLost`` (or, for ``flaky``, its own error)."""
    done_rows = [r for r in rows if r.status == "completed"]
    if len(done_rows) != 1:
        report.fail(run_id, f"{block_id}: {len(done_rows)} completed block_runs rows")
    elif completed and done_rows[0].attempt != completed.data.get("attempt"):
        report.fail(
            run_id,
            f"{block_id}: block_runs says attempt {done_rows[0].attempt} completed, the "
            f"events say {completed.data.get('attempt')}",
        )
    if sorted(r.attempt for r in rows) != sorted(a for a in started if a is not None):
        report.fail(
            run_id,
            f"{block_id}: block_runs attempts {[r.attempt for r in rows]} != started "
            f"attempts {started}",
        )
    allowed = {"WorkerLost"} | ({"ConnectionError"} if block_id == "flaky" else set())
    for row in rows:
        kind = (row.error or {}).get("type")
        if row.status != "completed" and (row.status != "failed" or kind not in allowed):
            report.fail(run_id, f"{block_id}: attempt {row.attempt} {row.status} with {row.error}")


def _check_orphans(
    report: Report, run_id: str, events: list[Ev], kills: list[Kill], lease: float
) -> None:
    """A block running on a worker when it was killed starts again within lease + 5 s."""
    for kill in kills:
        last: dict[str, Ev] = {}
        for event in events:
            if event.block_id and event.at <= kill.at:
                last[event.block_id] = event
        for block_id, event in last.items():
            if event.type != "block.started" or worker_pid(event.data.get("worker")) != kill.pid:
                continue
            report.orphans += 1
            lost = [
                e
                for e in events
                if e.block_id == block_id
                and e.type == "block.retrying"
                and e.seq > event.seq
                and e.data.get("lost")
            ]
            if lost:
                report.reclaims.append(lost[0].at - kill.at)
            again = [
                e
                for e in events
                if e.block_id == block_id and e.type == "block.started" and e.seq > event.seq
            ]
            if not again:
                report.fail(
                    run_id, f"{block_id} was running on worker {kill.pid}, killed; never re-run"
                )
                continue
            took = again[0].at - kill.at
            report.recoveries.append(took)
            if took > lease + 5:
                report.fail(
                    run_id,
                    f"{block_id} was running on worker {kill.pid} (killed at "
                    f"{_stamp(kill.at)}); re-started only {took:.2f}s later",
                )


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]


def describe(
    report: Report,
    events: dict[str, list[Ev]],
    kills: list[Kill],
    limit: int = 3,
) -> str:
    """The problems, the kills, and the events of the first few bad runs."""
    lines = [f"{len(report.problems)} problem(s):", *report.problems[:50]]
    lines.append("kills: " + ", ".join(f"{k.pid}@{_stamp(k.at)}" for k in kills))
    for run_id in sorted(report.bad_runs)[:limit]:
        lines.append(f"--- events of {run_id}")
        lines.extend(str(e) for e in events.get(run_id, []))
    return "\n".join(lines)


def unfinished(store: StoreReader, runs: dict[str, str], workers: Workers, why: str) -> str:
    """Why the test gave up waiting: the runs that did not end, the kills, the workers' CPU
    time, the events of a few runs."""
    events = store.events()
    lines = [f"{why}; {len(runs)} run(s) not ended:"]
    lines += [f"  {run_id}: {status}" for run_id, status in sorted(runs.items())[:30]]
    lines.append("kills: " + ", ".join(f"{k.pid}@{_stamp(k.at)}" for k in workers.kills))
    lines.append(f"CPU seconds of the live workers: {workers.cpu_seconds()}")
    for run_id in sorted(runs)[:3]:
        lines.append(f"--- events of {run_id}")
        lines.extend(str(e) for e in events.get(run_id, []))
    return "\n".join(lines)


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    return f"{len(values)}, median {median:.2f}s, max {ordered[-1]:.2f}s"
