"""``make bench-workers``: ``flowforge worker`` processes sharing a store (issue 3).

W2 run by 1, 2 and 4 workers on PostgreSQL (run.queued -> run.completed), start latency with one
idle worker (run.queued -> block.started, PostgreSQL and SQLite) and the transactions of 4 idle
workers; see bench/README.md. PostgreSQL = ``FLOWFORGE_BENCH_PG_SERVER`` (default
postgresql://postgres@127.0.0.1:5432), database ``ffbench_workers``, made afresh per measurement.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import psycopg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import workloads  # noqa: E402

from flowforge.definition.workflow import Workflow  # noqa: E402
from flowforge.embedded import Engine  # noqa: E402

SERVER = os.environ.get("FLOWFORGE_BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
DB = "ffbench_workers"
FLOWFORGE = Path(sys.executable).parent / "flowforge"
IDLE_SETTLE = 12.0


def admin(query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def fresh_pg() -> str:
    admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    admin(f"CREATE DATABASE {DB}")
    return f"{SERVER}/{DB}"


def store_rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the store directly (psycopg or sqlite3), outside flowforge."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute(query.replace("%s", "?"), params).fetchall()
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


@contextmanager
def workers(url: str, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` worker processes, registered in the store; SIGTERM (then SIGKILL) at the end."""
    path = [str(BENCH), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    cmd = [str(FLOWFORGE), "worker", "--concurrency", "64", "--quiet", "--database-url", url]
    procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
    with ExitStack() as logs:
        try:
            for _ in range(count):
                log = logs.enter_context(tempfile.TemporaryFile())
                procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=log), log))
            deadline = time.monotonic() + 30
            while store_rows(url, "SELECT count(*) FROM workers")[0][0] < count:
                if time.monotonic() > deadline or any(p.poll() is not None for p, _ in procs):
                    raise RuntimeError(f"{count} workers did not register")
                time.sleep(0.05)
            yield [p for p, _ in procs]
        finally:
            stop(procs)


def stop(procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]]) -> None:
    """SIGTERM every worker, SIGKILL those still there 10 s later; show a failed one's log."""
    for p, _ in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p, log in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            print(f"worker {p.pid} killed: still there 10 s after SIGTERM", file=sys.stderr)
        if p.returncode != 0:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            print(f"worker {p.pid} exited {p.returncode}:\n{tail}", file=sys.stderr)


def event_times(engine: Engine, run_id: str) -> dict[str, datetime]:
    """First created_at of each event type of the run."""
    times: dict[str, datetime] = {}
    for e in engine.events(run_id):
        if e.created_at is not None:
            times.setdefault(e.type, e.created_at)
    return times


def wait_event(engine: Engine, run_id: str, kind: str, timeout: float = 120) -> dict[str, datetime]:
    deadline = time.monotonic() + timeout
    while True:
        times = event_times(engine, run_id)
        if kind in times:
            return times
        if "run.failed" in times:
            raise RuntimeError(f"{run_id} failed: {engine.get(run_id).failure_reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run_id}: no {kind} in {timeout} s")
        time.sleep(0.01)


def w2_cell(count: int, n: int, warmup: int) -> dict[str, Any]:
    url = fresh_pg()
    wf = workloads.build("W2")
    with Engine(url) as engine:
        engine.apply(wf)  # schema and definition before the workers open the store
        with workers(url, count):
            secs, walls, spread = [], [], []
            for i in range(warmup + n):
                t0 = time.perf_counter()
                run_id = engine.start(wf).run_id
                times = wait_event(engine, run_id, "run.completed")
                wall = time.perf_counter() - t0
                result = engine.get(run_id)
                if result.status != "completed" or result.outputs != {"result": 125250}:
                    raise RuntimeError(f"W2 run {run_id}: {result.status} {result.outputs}")
                per_worker = store_rows(
                    url,
                    "SELECT worker_id, count(*) FROM block_runs WHERE run_id = %s"
                    " GROUP BY worker_id ORDER BY 2 DESC",
                    run_id,
                )
                if i >= warmup:
                    secs.append((times["run.completed"] - times["run.queued"]).total_seconds())
                    walls.append(wall)
                    spread.append("/".join(str(c) for _, c in per_worker))
    return {"workers": count, "s": secs, "wall": walls, "spread": spread}


def latency_cell(url: str, runs: int, warmup: int) -> list[float]:
    wf = Workflow("bench-latency", outputs={"result": workloads.out("only")})
    wf.add({"id": "only", "type": "python", "function": workloads.ref(workloads.first)})
    with Engine(url) as engine:
        engine.apply(wf)
        with workers(url, 1):
            time.sleep(1)  # let the worker settle: idle, waiting
            out = []
            for i in range(warmup + runs):
                run_id = engine.start(wf).run_id
                times = wait_event(engine, run_id, "block.started")
                wait_event(engine, run_id, "run.completed")  # idle again before the next one
                if i >= warmup:
                    out.append((times["block.started"] - times["run.queued"]).total_seconds())
    return out


def idle_cell(seconds: float) -> dict[str, float]:
    url = fresh_pg()
    Engine(url).close()  # the schema
    q = f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{DB}'"
    with workers(url, 4):
        # PostgreSQL >= 15 flushes an idle backend's statistics up to 10 s late: let the
        # workers' start-up transactions land before t0
        time.sleep(IDLE_SETTLE)
        conns = admin(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DB}'")[0][0]
        x0, t0 = admin(q)[0][0], time.monotonic()
        time.sleep(seconds)
        x1, t1 = admin(q)[0][0], time.monotonic()
    return {"txn": x1 - x0, "secs": t1 - t0, "tps": (x1 - x0) / (t1 - t0), "conns": conns}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def report(
    w2: list[dict[str, Any]],
    lat: dict[str, list[float]],
    idle: dict[str, float],
    args: argparse.Namespace,
) -> str:
    lines = [
        "# flowforge workers bench (issue 3)",
        "",
        f"{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPU, Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.2f}; `flowforge worker --concurrency 64 --quiet`.",
        "",
        f"## W2 (1 -> 500 -> join) on PostgreSQL, median of {args.n} after {args.warmup} warm-up",
        "",
        "| workers | queued -> completed s, median (min-max) | start() -> seen completed s | "
        "workers that ran blocks | blocks per worker (each run) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in w2:
        s = c["s"]
        used = sorted({len(x.split("/")) for x in c["spread"]})
        lines.append(
            f"| {c['workers']} | {statistics.median(s):.3f} ({min(s):.3f}-{max(s):.3f}) | "
            f"{statistics.median(c['wall']):.3f} | {'-'.join(map(str, used))} | "
            f"{', '.join(c['spread'])} |"
        )
    lines += [
        "",
        f"## Start latency, one idle worker: run.queued -> block.started, {args.latency_runs} "
        "single-block runs one at a time",
        "",
        "| store | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- |",
    ]
    for store, v in lat.items():
        lines.append(
            f"| {store} | {pct(v, 50) * 1e3:.1f} | {pct(v, 99) * 1e3:.1f} | {max(v) * 1e3:.1f} |"
        )
    lines += [
        "",
        f"## 4 idle workers on PostgreSQL over {idle['secs']:.0f} s",
        "",
        "| transactions (xact_commit + xact_rollback) | per second | per worker per 10 s | "
        "connections to the database |",
        "| --- | --- | --- | --- |",
        f"| {idle['txn']:.0f} | {idle['tps']:.2f} | {idle['tps'] * 10 / 4:.1f} | "
        f"{idle['conns']:.0f} |",
        "",
        f"Read from `pg_stat_database` (via the `postgres` database), {IDLE_SETTLE:.0f} s after "
        "the 4 workers registered.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=5, help="counted W2 runs per worker count")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted W2 runs first")
    ap.add_argument("--workers", default="1,2,4", help="worker counts for W2")
    ap.add_argument("--latency-runs", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--out", default=str(BENCH / "results" / "workers.md"))
    args = ap.parse_args()

    w2 = []
    for count in (int(c) for c in args.workers.split(",")):
        print(f"W2, {count} worker(s) ...", file=sys.stderr, flush=True)
        w2.append(w2_cell(count, args.n, args.warmup))
    lat: dict[str, list[float]] = {}
    print("start latency, PostgreSQL ...", file=sys.stderr, flush=True)
    lat["PostgreSQL"] = latency_cell(fresh_pg(), args.latency_runs, 5)
    print("start latency, SQLite ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="ffbench-workers-") as tmp:
        lat["SQLite (file, worker process)"] = latency_cell(
            f"sqlite:///{tmp}/store.db", args.latency_runs, 5
        )
    print(f"4 idle workers, {args.idle_seconds:.0f} s ...", file=sys.stderr, flush=True)
    idle = idle_cell(args.idle_seconds)

    text = report(w2, lat, idle, args)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
