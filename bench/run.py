"""``make bench``: flowforge on the three bench-peers shapes, next to the floor measured now.

  python bench/run.py [-n 5] [--warmup 1] [--workloads W1,W2,W3] [--no-postgres]
                      [--out bench/results/latest.md] [--update-readme]

Every figure is one fresh process per run, one timing at a time, N counted runs after the
warm-up ones, medians (the logic of bench-peers/measure.py: wall clock around the child,
peak RSS = ru_maxrss from os.wait4, run_s from the JSON line the script prints).

Cells: flowforge on SQLite and PostgreSQL (``bench/peers/flowforge/run.py``, async blocks; W1
also with sync blocks), the floor (``bench/peers/baseline/run.py``, a verbatim copy of
bench-peers' baseline: ``--store none|sqlite|postgres``) and W3 as a whole ``flowforge run FILE``
process. PostgreSQL = ``FLOWFORGE_BENCH_PG_URL`` (default: database ``ffbench`` on
postgresql://postgres@127.0.0.1:5432, created when missing); its cells are skipped when the
server does not answer. Writes the Markdown report to ``--out`` and ``latest.json`` beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import workloads  # noqa: E402

FLOWFORGE_RUN = BENCH / "peers" / "flowforge" / "run.py"
BASELINE_RUN = BENCH / "peers" / "baseline" / "run.py"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/ffbench"
WORKLOADS = ("W1", "W2", "W3")

# reference/performance.md (2 vCPU Xeon VM, CPython 3.11.7, medians of 5 after 1 warm-up):
# (median wall s, in-process s, peak MiB) per workload
PEERS: dict[str, dict[str, tuple[float, float, float]]] = {
    "DBOS, SQLite": {"W1": (1.408, 0.225, 68), "W2": (6.454, 5.284, 106), "W3": (1.427, 0.089, 68)},
    "DBOS, PostgreSQL": {
        "W1": (0.730, 0.265, 66),
        "W2": (4.916, 4.421, 75),
        "W3": (0.584, 0.124, 66),
    },
    "Prefect 3, temporary local server": {
        "W1": (6.536, 5.030, 202),
        "W2": (8.660, 7.194, 213),
        "W3": (6.506, 5.116, 198),
    },
    "Luigi, local scheduler, 1 worker": {
        "W1": (0.217, 0.107, 30),
        "W2": (1.145, 1.028, 33),
        "W3": (0.165, 0.051, 30),
    },
}


# -- measuring --------------------------------------------------------------------------------
def run_once(
    cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> dict[str, Any]:
    """One fresh process: wall s, peak RSS MiB (wait4), exit code, its JSON line if any."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
        )
        assert p.stdout is not None
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen quiet
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    rec: dict[str, Any] = {
        "wall_s": wall,
        "peak_mib": ru.ru_maxrss / 1024,
        "exit": p.returncode,
        "stdout": out.decode(errors="replace"),
    }
    for line in rec["stdout"].splitlines():
        if line.startswith("{") and '"peer"' in line:
            rec.update(json.loads(line))
    if rec["exit"] != 0:
        rec["stderr"] = stderr[-2000:]
    return rec


@dataclass
class Cell:
    key: str  # e.g. "W1/flowforge-sqlite"
    workload: str
    label: str
    cmd: list[str]
    env: Callable[[], dict[str, str]] | None = None
    check: Callable[[dict[str, Any]], bool] | None = None
    note: str = ""
    cwd: Path = ROOT
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    def measure(self, n: int, warmup: int) -> None:
        for _ in range(warmup):
            self._one()
        self.runs = [self._one() for _ in range(n)]
        self.summary = summarize(self.runs)

    def _one(self) -> dict[str, Any]:
        env = self.env() if self.env else None
        rec = run_once(self.cmd, env={**os.environ, **env} if env else None, cwd=str(self.cwd))
        ok = rec["exit"] == 0 and (self.check(rec) if self.check else "result" in rec)
        rec["ok"] = bool(ok)
        if not ok:
            print(
                f"  ! {self.key}: exit {rec['exit']} {rec.get('stderr', '')[-600:]}",
                file=sys.stderr,
            )
        return rec


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"runs": len(runs), "failed": sum(not r["ok"] for r in runs)}
    for key in ("wall_s", "peak_mib", "import_s", "setup_s", "run_s", "txn_per_block"):
        vals = [r[key] for r in runs if r.get(key) is not None]
        if vals:
            summary[key] = {"min": min(vals), "median": statistics.median(vals), "max": max(vals)}
    return summary


# -- PostgreSQL and the CLI -------------------------------------------------------------------
def postgres_url() -> str | None:
    """The bench database's URL, created when missing; None when PostgreSQL does not answer.

    Checked in a child process: psycopg imported here would inflate every child's peak RSS."""
    url = os.environ.get("FLOWFORGE_BENCH_PG_URL") or PG_DEFAULT
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from run import ensure_pg_database; "
        "ensure_pg_database(sys.argv[2])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(FLOWFORGE_RUN.parent), url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["?"])[-1]
        print(f"PostgreSQL not available at {url} ({why}): skipping its cells", file=sys.stderr)
        return None
    return url


def cli_command() -> tuple[list[str] | None, str]:
    """How to run ``flowforge run``: the console script when the CLI module exists."""
    # find_spec("flowforge.cli.main") would import flowforge into this process, and a child's
    # ru_maxrss starts at its parent's RSS: keep this process small, look for the file instead
    spec = importlib.util.find_spec("flowforge")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if any((Path(p) / "cli" / "main.py").exists() for p in locations):
        script = Path(sys.executable).parent / "flowforge"
        if script.exists():
            return [str(script)], "flowforge run DIR/w3.yaml"
        return [sys.executable, "-m", "flowforge"], "python -m flowforge run DIR/w3.yaml"
    return None, ""


def w3_cli_cells(scratch: Path) -> list[Cell]:
    """W3 as a whole ``flowforge run FILE`` process: YAML + fibo module in one folder."""
    base, how = cli_command()
    if base is None:
        return [
            Cell(
                "W3/cli",
                "W3",
                "flowforge (whole process)",
                [sys.executable, str(FLOWFORGE_RUN), "W3"],
                note="fallback: the CLI (flowforge.cli.main) does not exist yet; this is "
                "`python bench/peers/flowforge/run.py W3` (fresh SQLite file, "
                "schema migration included)",
            )
        ]
    folder = scratch / "w3-cli"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "w3.yaml").write_text(workloads.w3_yaml("fibo_steps"))
    (folder / "fibo_steps.py").write_text(workloads.FIBO_MODULE)
    cmd = [*base, "run", str(folder / "w3.yaml")]
    home = scratch / "w3-cli-home"
    shutil.rmtree(home, ignore_errors=True)
    fresh_root = scratch / "fresh-homes"
    counter = iter(range(10**6))

    def check(rec: dict[str, Any]) -> bool:
        return re.search(r"\b2200\b", rec["stdout"]) is not None

    def warm_env() -> dict[str, str]:
        return {"FLOWFORGE_HOME": str(home), "FLOWFORGE_DATABASE_URL": ""}

    def fresh_env() -> dict[str, str]:
        return {
            "FLOWFORGE_HOME": str(fresh_root / str(next(counter))),
            "FLOWFORGE_DATABASE_URL": "",
        }

    return [
        Cell(
            "W3/cli",
            "W3",
            "flowforge run (whole process)",
            cmd,
            env=warm_env,
            check=check,
            note=f"`{how}`; SQLite store under a FLOWFORGE_HOME kept across runs (the "
            "warm-up creates its schema, as for the peers)",
        ),
        Cell(
            "W3/cli-fresh",
            "W3",
            "flowforge run, fresh FLOWFORGE_HOME",
            cmd,
            env=fresh_env,
            check=check,
            note="a new FLOWFORGE_HOME per run: schema creation included",
        ),
    ]


# -- the plan ---------------------------------------------------------------------------------
def plan(workloads_: list[str], pg: str | None, scratch: Path, sync_all: bool) -> list[Cell]:
    py = sys.executable
    pg_env = (lambda: {"FLOWFORGE_BENCH_PG_URL": pg, "BASE_PG_DSN": pg}) if pg else None
    floor_db = str(scratch / "baseline.sqlite")
    cells: list[Cell] = []
    for w in workloads_:
        ff = [py, str(FLOWFORGE_RUN), w]
        cells.append(
            Cell(f"{w}/ff-sqlite", w, "flowforge sqlite", ff, note="fresh SQLite file per run")
        )
        cells.append(
            Cell(
                f"{w}/ff-sqlite-kept",
                w,
                "flowforge sqlite, store kept",
                [*ff, "--sqlite-file", str(scratch / f"ff-{w}.db")],
                note="one SQLite file for all runs (schema made by the warm-up), like the peers",
            )
        )
        if pg:
            cells.append(
                Cell(
                    f"{w}/ff-postgres",
                    w,
                    "flowforge postgres",
                    [*ff, "--db", "postgres"],
                    env=pg_env,
                )
            )
        if w == "W1" or sync_all:
            cells.append(
                Cell(
                    f"{w}/ff-sqlite-sync",
                    w,
                    "flowforge sqlite, sync blocks",
                    [*ff, "--mode", "sync"],
                )
            )
            if pg:
                cells.append(
                    Cell(
                        f"{w}/ff-postgres-sync",
                        w,
                        "flowforge postgres, sync blocks",
                        [*ff, "--db", "postgres", "--mode", "sync"],
                        env=pg_env,
                    )
                )
        floor = [py, str(BASELINE_RUN), w, "--store"]
        cells.append(Cell(f"{w}/floor-none", w, "floor asyncio", [*floor, "none"]))
        cells.append(
            Cell(f"{w}/floor-sqlite", w, "floor sqlite", [*floor, "sqlite", "--db", floor_db])
        )
        if pg:
            cells.append(
                Cell(f"{w}/floor-postgres", w, "floor postgres", [*floor, "postgres"], env=pg_env)
            )
        if w == "W3":
            cells.extend(w3_cli_cells(scratch))
    return cells


# -- the report -------------------------------------------------------------------------------
def med(cell: Cell | None, key: str) -> float | None:
    if cell is None or cell.summary.get("failed") or key not in cell.summary:
        return None
    return float(cell.summary[key]["median"])


def fmt(value: float | None, digits: int = 4, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "n/a"
    if cell.summary.get("failed"):
        return f"FAILED ({cell.summary['failed']}/{cell.summary['runs']})"
    return (
        f"{fmt(med(cell, 'run_s'))} / {fmt(med(cell, 'wall_s'), 3)} / "
        f"{fmt(med(cell, 'peak_mib'), 0)}"
    )


COLUMNS = [
    ("ff-sqlite", "flowforge sqlite"),
    ("ff-postgres", "flowforge postgres"),
    ("floor-none", "floor asyncio"),
    ("floor-sqlite", "floor sqlite"),
    ("floor-postgres", "floor postgres"),
]


def targets(by: dict[str, Cell]) -> list[tuple[str, str, str, bool | None]]:
    """(target, limit, measured, pass) rows; pass None when a figure is missing."""
    rows: list[tuple[str, str, str, bool | None]] = []

    def add(
        name: str,
        limit_text: str,
        value: float | None,
        limit: float | None,
        unit: str = " s",
        digits: int = 4,
    ) -> None:
        ok = None if value is None or limit is None else value <= limit
        rows.append((name, limit_text, fmt(value, digits, unit), ok))

    w1_pg, w1_floor = (
        med(by.get("W1/ff-postgres"), "run_s"),
        med(by.get("W1/floor-postgres"), "run_s"),
    )
    add("W1 chain in-process, SQLite", "<= 0.025 s", med(by.get("W1/ff-sqlite"), "run_s"), 0.025)
    add(
        "W1 chain in-process, PostgreSQL",
        f"<= 1.5x PostgreSQL floor ({fmt(w1_floor)} s) = {fmt(w1_floor and 1.5 * w1_floor)} s",
        w1_pg,
        w1_floor and 1.5 * w1_floor,
    )
    add("W2 fan-out in-process, SQLite", "<= 0.15 s", med(by.get("W2/ff-sqlite"), "run_s"), 0.15)
    add(
        "W2 fan-out in-process, PostgreSQL",
        "<= 0.25 s",
        med(by.get("W2/ff-postgres"), "run_s"),
        0.25,
    )
    cli = by.get("W3/cli")
    add(
        f"W3 whole process ({'`flowforge run`' if cli and cli.env else 'fallback: run.py W3'})",
        "<= 0.35 s wall",
        med(cli, "wall_s"),
        0.35,
        digits=3,
    )
    add(
        "W2 peak memory, SQLite",
        "<= 60 MiB",
        med(by.get("W2/ff-sqlite"), "peak_mib"),
        60,
        " MiB",
        1,
    )
    add(
        "W2 peak memory, SQLite store kept (info)",
        "<= 60 MiB",
        med(by.get("W2/ff-sqlite-kept"), "peak_mib"),
        60,
        " MiB",
        1,
    )
    add(
        "W3 whole process, fresh FLOWFORGE_HOME (info)",
        "<= 0.35 s wall",
        med(by.get("W3/cli-fresh"), "wall_s"),
        0.35,
        digits=3,
    )
    add(
        "W2 peak memory, PostgreSQL",
        "<= 60 MiB",
        med(by.get("W2/ff-postgres"), "peak_mib"),
        60,
        " MiB",
        1,
    )
    return rows


def report(cells: list[Cell], args: argparse.Namespace, started: float) -> str:
    by = {c.key: c for c in cells}
    wl = [w for w in WORKLOADS if any(c.workload == w for c in cells)]
    load = os.getloadavg()
    lines = [
        "# flowforge bench",
        "",
        f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M')}, {platform.node()}, "
        f"{os.cpu_count()} CPU, Python {platform.python_version()}, "
        f"{args.n} runs after {args.warmup} warm-up, one fresh process per run, medians; "
        f"load average at start {args.load0[0]:.2f}, at end {load[0]:.2f}; "
        f"took {time.perf_counter() - started:.0f} s.",
        "",
        "## Medians: in-process run_s / whole-process wall s / peak MiB",
        "",
        "| workload | " + " | ".join(name for _, name in COLUMNS) + " |",
        "| --- |" + " --- |" * len(COLUMNS),
    ]
    for w in wl:
        lines.append(
            f"| {w} | " + " | ".join(cell_text(by.get(f"{w}/{k}")) for k, _ in COLUMNS) + " |"
        )
    lines += [
        "",
        "run_s = `engine.run(wf)` (flowforge) or the workflow call (floor): store open, "
        "definition applied; wall = process start to exit, timed from outside.",
        "",
        "## All cells",
        "",
        "| cell | run_s median (min-max) | wall s median (min-max) | peak MiB | import s | "
        "setup s | txn/block | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in cells:
        s = c.summary
        if s.get("failed"):
            lines.append(
                f"| {c.workload} {c.label} | FAILED {s['failed']}/{s['runs']} | | | | | "
                f"| {c.note} |"
            )
            continue

        def mm(key: str, digits: int = 4, s: dict[str, Any] = s) -> str:
            if key not in s:
                return "-"
            v = s[key]
            return f"{v['median']:.{digits}f} ({v['min']:.{digits}f}-{v['max']:.{digits}f})"

        txn = s.get("txn_per_block", {}).get("median")
        lines.append(
            f"| {c.workload} {c.label} | {mm('run_s')} | {mm('wall_s', 3)} | "
            f"{fmt(med(c, 'peak_mib'), 1)} | {fmt(med(c, 'import_s'), 3)} | "
            f"{fmt(med(c, 'setup_s'), 3)} | {fmt(txn, 3)} | {c.note} |"
        )
    lines += [
        "",
        "txn/block = store transactions the worker committed during the run "
        "(`engine.last_worker.transactions`) / number of blocks (W1 100, W2 502, W3 40).",
        "",
        "## Targets",
        "",
        "| target | limit | measured | |",
        "| --- | --- | --- | --- |",
    ]
    for name, limit, measured, ok in targets(by):
        verdict = "n/a" if ok is None else ("PASS" if ok else "**MISS**")
        lines.append(f"| {name} | {limit} | {measured} | {verdict} |")
    lines += [
        "",
        "## Peers, for comparison (constants from reference/performance.md, another run on a "
        "2 vCPU VM)",
        "",
        "in-process s / wall s / peak MiB",
        "",
        "| peer | " + " | ".join(wl) + " |",
        "| --- |" + " --- |" * len(wl),
    ]
    for name, figures in PEERS.items():
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{figures[w][1]:.3f} / {figures[w][0]:.3f} / {figures[w][2]:.0f}" for w in wl
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def update_readme(table: str) -> None:
    readme = BENCH / "README.md"
    text = readme.read_text()
    start, end = "<!-- latest:start -->", "<!-- latest:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        table = table.replace("\n## ", "\n### ")  # under the README's own "## Latest figures"
        readme.write_text(f"{head}{start}\n{table}{end}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=5, help="counted runs per cell (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up runs per cell (default 1)")
    ap.add_argument("--workloads", default="W1,W2,W3")
    ap.add_argument("--only", default="", help="comma-separated cell keys, e.g. W1/ff-sqlite")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--sync-all", action="store_true", help="sync-block cells for W2 and W3 too")
    ap.add_argument("--out", default=str(BENCH / "results" / "latest.md"))
    ap.add_argument(
        "--update-readme", action="store_true", help="also replace the figures in bench/README.md"
    )
    args = ap.parse_args()
    args.load0 = os.getloadavg()
    started = time.perf_counter()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ffbench-scratch-"))
    pg = None if args.no_postgres else postgres_url()
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    cells = plan(chosen, pg, scratch, args.sync_all)
    if args.only:
        keep = {k.strip() for k in args.only.split(",")}
        cells = [c for c in cells if c.key in keep]
    try:
        for cell in cells:
            print(f"{cell.key:24} ...", end=" ", flush=True, file=sys.stderr)
            cell.measure(args.n, args.warmup)
            print(cell_text(cell), file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    text = report(cells, args, started)
    print(text)
    out.write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps(
            [
                {
                    "key": c.key,
                    "label": c.label,
                    "cmd": c.cmd,
                    "note": c.note,
                    "summary": c.summary,
                    "runs": [{k: v for k, v in r.items() if k != "stdout"} for r in c.runs],
                }
                for c in cells
            ],
            indent=1,
        )
    )
    if args.update_readme:
        update_readme(text.split("\n", 2)[2])
    if any(c.summary.get("failed") for c in cells):
        sys.exit(1)


if __name__ == "__main__":
    main()
