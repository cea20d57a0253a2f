"""flowforge peer (bench-peers contract): python run.py W1|W2|W3 [--db sqlite|postgres]

flowforge is a library: ``Engine(url)`` opens the store (migrating it), ``engine.apply(wf)``
stores the definition, ``engine.run(wf)`` runs it to the end in this process. Every block is a
``python`` block whose output is committed to the store before its dependants start.

  --db sqlite    (default) a fresh SQLite file in a new temporary directory (WAL, NORMAL)
  --db postgres  $FLOWFORGE_BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/ffbench
                 (the database is created when missing; that check is not timed)
  --sqlite-file PATH  SQLite at PATH, kept (a schema already there is not migrated again)
  --mode async   (default) ``async def`` blocks, run on the event loop
  --mode sync    plain functions, one thread per attempt (asyncio.to_thread)

  import_s  importing flowforge (from this script's first line)
  setup_s   Engine(url) (open + migrate) and engine.apply(wf) (compile + store the definition)
  run_s     engine.run(wf): start call to result, store already open
Extra field: txn_per_block = store transactions the worker committed / number of blocks.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from flowforge import Engine  # noqa: E402

T_IMP = time.perf_counter()

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, BENCH_DIR)
import workloads  # noqa: E402

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_DEFAULT = f"{PG_SERVER}/ffbench"


def ensure_pg_database(url: str = PG_DEFAULT) -> str:
    """Create the scratch database named in ``url`` when it does not exist yet."""
    import psycopg

    server, _, name = url.rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as con:
        found = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            con.execute(f'CREATE DATABASE "{name}"')
    return url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["W1", "W2", "W3"])
    ap.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--mode", default="async", choices=["async", "sync"])
    ap.add_argument("--sqlite-file", default=None)
    a = ap.parse_args()

    tmpdir = None
    if a.db == "sqlite" and a.sqlite_file:
        url = f"sqlite:///{os.path.abspath(a.sqlite_file)}"
    elif a.db == "sqlite":
        tmpdir = tempfile.mkdtemp(prefix="ffbench-")
        url = f"sqlite:///{os.path.join(tmpdir, 'flowforge.db')}"
    else:
        url = os.environ.get("FLOWFORGE_BENCH_PG_URL") or ensure_pg_database()
    wf = workloads.build(a.workload, a.mode)

    t_setup0 = time.perf_counter()
    engine = Engine(url)
    engine.apply(wf)
    t_setup = time.perf_counter()
    result = engine.run(wf)
    t_run = time.perf_counter()

    transactions = engine.last_worker.transactions if engine.last_worker else None
    engine.close()
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)
    value = (result.outputs or {}).get("result")
    assert result.status == "completed", (result.status, result.failure_reason)
    assert value == workloads.EXPECTED[a.workload], value
    blocks = workloads.BLOCKS[a.workload]
    suffix = ("" if a.mode == "async" else "-sync") + ("-kept" if a.sqlite_file else "")
    print(
        json.dumps(
            {
                "peer": f"flowforge-{a.db}{suffix}",
                "workload": a.workload,
                "import_s": round(T_IMP - T0, 4),
                "setup_s": round(t_setup - t_setup0, 4),
                "run_s": round(t_run - t_setup, 5),
                "result": value,
                "txn_per_block": None if transactions is None else round(transactions / blocks, 4),
                "transactions": transactions,
            }
        )
    )


if __name__ == "__main__":
    main()
