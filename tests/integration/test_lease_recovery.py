"""A dead worker's blocks are taken over once its lease expires (no process id to check)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg

import flowforge


def _module(tmp_path: Path, marker: Path, effects: Path) -> None:
    """The blocks live in an importable module: another process resumes the run."""
    (tmp_path / "leased_blocks.py").write_text(
        textwrap.dedent(f"""
        import time
        from pathlib import Path

        def first():
            with open({str(effects)!r}, "a") as f:
                f.write("first\\n")
            return 1

        def slow(first):
            with open({str(effects)!r}, "a") as f:
                f.write("slow\\n")
            if not Path({str(marker)!r}).exists():
                Path({str(marker)!r}).write_text("running")
                time.sleep(60)   # killed here on the first attempt
            return first + 1
    """)
    )


def _script(url: str) -> str:
    return textwrap.dedent(f"""
        import flowforge
        import leased_blocks

        wf = flowforge.Workflow("leased")
        wf.block()(leased_blocks.first)
        wf.block()(leased_blocks.slow)
        with flowforge.Engine({url!r}, lease=1.0) as engine:
            engine.run(wf)
    """)


def _move_workers_elsewhere(url: str) -> None:
    """Make the dead worker look like one of another host: only its lease can tell."""
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE workers SET hostname = 'elsewhere'")
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE workers SET hostname = 'elsewhere'")


def test_blocks_of_a_worker_that_died_run_again_once_its_lease_expires(
    store_url: str, tmp_path: Path
) -> None:
    marker, effects = tmp_path / "marker", tmp_path / "effects"
    _module(tmp_path, marker, effects)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", _script(store_url)], env=env)
    sys.path.insert(0, str(tmp_path))
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert child.poll() is None, "the run ended before its block was killed"
        assert time.monotonic() < deadline, "block 'slow' never started"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    _move_workers_elsewhere(store_url)

    try:
        with flowforge.Engine(store_url, lease=1.0) as engine:
            [run] = engine.list()
            started = time.monotonic()
            result = engine.resume(run.run_id)
            took = time.monotonic() - started
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("leased_blocks", None)

    assert result.status == "completed", result.failure_reason
    assert result.outputs == {"slow": 2}
    assert effects.read_text().splitlines() == ["first", "slow", "slow"]  # first: once
    assert result.block("slow").attempts == 2
    assert took < 15, f"the takeover took {took:.1f}s with a 1 s lease"
    events = [e.type for e in engine_events(store_url, run.run_id)]
    assert events.count("block.retrying") == 1


def engine_events(url: str, run_id: str) -> list[flowforge.Event]:
    with flowforge.Engine(url) as engine:
        return engine.events(run_id)
