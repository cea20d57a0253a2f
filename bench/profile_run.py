"""cProfile of ``engine.run(wf)`` for one workload, store open and workflow applied first.

  python bench/profile_run.py W1|W2|W3 [--db sqlite|postgres] [--mode async|sync] [--top 15]
                          [--sort tottime|cumulative] [--out FILE.prof]

Only the calling thread is profiled: with ``--db postgres`` the store calls run in the worker's
database thread and with ``--mode sync`` the blocks run in threads, so use the default SQLite
store and async blocks to see the engine's own Python cost, or ``--inline-db`` to make the
worker call the store inline on PostgreSQL too (same statements, no thread hop; for sequential
workloads like W1 and W3 the work is the same).

The header also gives the time the cyclic garbage collector took during the run (gc.callbacks):
a generation-2 collection is charged by cProfile to whatever Python function was running.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "peers" / "flowforge"))

import workloads  # noqa: E402

from flowforge import Engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["W1", "W2", "W3"])
    ap.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--mode", default="async", choices=["async", "sync"])
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--out", default=None, help="also dump the raw profile here")
    ap.add_argument("--inline-db", action="store_true", help="store calls in the loop thread")
    a = ap.parse_args()

    tmpdir = tempfile.mkdtemp(prefix="ffbench-prof-")
    if a.db == "sqlite":
        url = f"sqlite:///{os.path.join(tmpdir, 'flowforge.db')}"
    else:
        from run import ensure_pg_database  # bench/peers/flowforge/run.py

        url = os.environ.get("FLOWFORGE_BENCH_PG_URL") or ensure_pg_database()
    wf = workloads.build(a.workload, a.mode)
    engine = Engine(url)
    engine.apply(wf)
    if a.inline_db:
        _inline_db()
    gc_time, gc_runs = [0.0, 0.0, 0.0], [0, 0, 0]
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_runs[info["generation"]] += 1
            gc_time[info["generation"]] += time.perf_counter() - gc_start[0]

    profiler = cProfile.Profile()
    gc.callbacks.append(on_gc)
    t0 = time.perf_counter()
    profiler.enable()
    result = engine.run(wf)
    profiler.disable()
    elapsed = time.perf_counter() - t0
    gc.callbacks.remove(on_gc)
    transactions = engine.last_worker.transactions if engine.last_worker else None
    engine.close()
    shutil.rmtree(tmpdir, ignore_errors=True)
    assert (result.outputs or {}).get("result") == workloads.EXPECTED[a.workload], result.outputs

    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(
        f"# {a.workload} on {a.db}, {a.mode} blocks: engine.run {elapsed * 1000:.1f} ms under "
        f"cProfile (profiled total {total * 1000:.1f} ms), {transactions} transactions; "
        f"gc collections per generation {gc_runs}, "
        f"{sum(gc_time) * 1000:.1f} ms in gc (gen2 {gc_time[2] * 1000:.1f} ms)"
    )
    key = 2 if a.sort == "tottime" else 3  # (cc, nc, tt, ct, callers)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][key], reverse=True)  # type: ignore[attr-defined]
    print(f"{'ncalls':>8} {'tottime ms':>10} {'share':>6} {'cumtime ms':>10}  function")
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in rows[: a.top]:
        print(
            f"{nc:>8} {tt * 1000:>10.2f} {tt / total:>6.1%} {ct * 1000:>10.2f}  "
            f"{_where(filename, line, name)}"
        )
    if a.out:
        stats.dump_stats(a.out)


def _inline_db() -> None:
    """Make every worker run its store calls inline (as it does on SQLite)."""
    from flowforge.worker import worker as worker_module

    original = worker_module.Worker.__init__

    def init(self: object, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        self._inline_db = True  # type: ignore[attr-defined]

    worker_module.Worker.__init__ = init  # type: ignore[method-assign]


def _where(filename: str, line: int, name: str) -> str:
    if filename == "~":
        return name  # a C function: {method 'execute' of 'sqlite3.Connection' objects}
    filename = re.sub(r"^.*/(site-packages|src|lib/python3\.\d+)/", "", filename)
    return f"{filename}:{line}({name})"


if __name__ == "__main__":
    main()
