"""``make bench`` (control flow, issue 3): what an iteration, a signal and a child run cost.

In one process, on a fresh store per measurement (SQLite file; PostgreSQL database
``ffbench_control`` on ``FLOWFORGE_BENCH_PG_SERVER``), 1 warm-up + N runs, medians:

- F1: ``for_each`` over 1,000 items, a ``transform`` body, concurrency 100;
- F2: ``loop`` of 200 iterations of a ``transform`` body (strictly one after another);
- F3: ``for_each`` over 50 items whose body is a ``workflow`` block (50 child runs);
- floor: plain asyncio, 1,000 trivial tasks gathered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from flowforge.definition.workflow import Workflow
from flowforge.embedded import Engine

SERVER = os.environ.get("FLOWFORGE_BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
DB = "ffbench_control"

F1 = {
    "id": "f1",
    "blocks": [
        {
            "id": "each",
            "type": "for_each",
            "items": "{{ range(1000) | list }}",
            "concurrency": 100,
            "do": {"type": "transform", "value": "{{ item * 2 }}"},
        }
    ],
    "outputs": {"n": "{{ blocks.each.output | length }}"},
}
F2 = {
    "id": "f2",
    "blocks": [
        {
            "id": "again",
            "type": "loop",
            "max_iterations": 200,
            "until": "iteration >= 199",
            "do": {"type": "transform", "value": "{{ iteration }}"},
        }
    ],
    "outputs": {"n": "{{ blocks.again.output | length }}"},
}
CHILD = {
    "id": "child",
    "parameters": {"n": {"type": "integer", "required": True}},
    "blocks": [{"id": "sq", "type": "transform", "value": "{{ params.n * params.n }}"}],
}
F3 = {
    "id": "f3",
    "blocks": [
        {
            "id": "each",
            "type": "for_each",
            "items": "{{ range(50) | list }}",
            "concurrency": 50,
            "do": {"type": "workflow", "workflow": "child", "parameters": {"n": "{{ item }}"}},
        }
    ],
    "outputs": {"n": "{{ blocks.each.output | length }}"},
}
EXPECTED = {"f1": 1000, "f2": 200, "f3": 50}


def fresh(store: str, tmp: Path, i: int) -> str:
    if store == "sqlite":
        return f"sqlite:///{tmp}/control-{i}.db"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    return f"{SERVER}/{DB}"


def measure(store: str, definition: dict[str, Any], n: int, tmp: Path) -> float:
    times = []
    for i in range(n + 1):
        with Engine(fresh(store, tmp, i)) as engine:
            engine.apply(Workflow.from_dict(CHILD))
            wf = Workflow.from_dict(definition)
            engine.apply(wf)
            started = time.perf_counter()
            result = engine.run(wf)
            elapsed = time.perf_counter() - started
            if result.status != "completed" or result.outputs != {"n": EXPECTED[wf.id]}:
                raise RuntimeError(f"{wf.id}: {result.status} {result.failure_reason}")
        if i:
            times.append(elapsed)
    return statistics.median(times)


def floor(n: int) -> float:
    async def one(x: int) -> int:
        return x * 2

    async def all_of() -> None:
        await asyncio.gather(*(one(x) for x in range(1000)))

    times = []
    for _ in range(n):
        started = time.perf_counter()
        asyncio.run(all_of())
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--stores", default="sqlite,postgresql")
    args = ap.parse_args()
    rows: list[tuple[str, Callable[[int], str]]] = [
        ("F1 for_each 1,000 items", lambda count: f"{count / 1000 * 1e6:.0f} µs/iteration"),
        ("F2 loop 200 iterations", lambda count: f"{count / 200 * 1e6:.0f} µs/iteration"),
        ("F3 for_each 50 child runs", lambda count: f"{count / 50 * 1e3:.2f} ms/child"),
    ]
    print(f"floor: plain asyncio, 1,000 tasks gathered: {floor(args.n) * 1e3:.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        for store in args.stores.split(","):
            for (label, per), definition in zip(rows, (F1, F2, F3), strict=True):
                seconds = measure(store, definition, args.n, Path(tmp))
                print(f"{store:10} {label:28} {seconds * 1e3:8.1f} ms  ({per(seconds)})")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
