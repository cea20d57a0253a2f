"""A stale worker (stopped past its lease) cannot commit: another worker's attempt wins."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_runner import Cli, wait_for

import flowforge

SLOW = """
import os
import time
from pathlib import Path

def slow(ctx, marks):
    Path(marks, f"started-{ctx.attempt}").write_text(str(os.getpid()))
    time.sleep(3)
    Path(marks, f"returned-{ctx.attempt}").write_text(str(os.getpid()))
    return os.getpid()
"""


@pytest.mark.slow
def test_a_worker_stopped_past_its_lease_cannot_commit_its_late_result(
    tmp_path: Path, store_url: str
) -> None:
    cli = Cli(tmp_path, database_url=store_url)
    cli.module("stale", SLOW)
    marks = tmp_path / "marks"
    marks.mkdir()
    workflow = flowforge.load(
        cli.write(
            "stale.yaml",
            f"""
        id: stale
        blocks:
          - id: slow
            type: python
            function: stale:slow
            args: {{marks: "{marks}"}}
    """,
        )
    )

    def worker() -> subprocess.Popen[str]:
        return subprocess.Popen(
            cli.command("worker", "--lease", "1", "--quiet"),
            env=cli.env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    with flowforge.Engine(store_url) as engine:
        run_id = engine.start(workflow).run_id
        first = worker()
        second = None
        try:
            wait_for(lambda: (marks / "started-1").exists(), 30, "attempt 1 to start")
            os.kill(first.pid, signal.SIGSTOP)  # mid-block, and past its lease soon
            second = worker()
            wait_for(lambda: engine.get(run_id).status == "completed", 30, "the takeover")
            os.kill(first.pid, signal.SIGCONT)
            wait_for(lambda: (marks / "returned-1").exists(), 30, "the stale attempt to end")
            time.sleep(1.5)  # room for the stale worker to try to commit its late result
            record = engine.get(run_id)
            events = engine.events(run_id)
            attempts = engine.store.run_attempts(run_id)
        finally:
            for process in (first, second):
                if process is not None:
                    os.kill(process.pid, signal.SIGCONT)
                    process.send_signal(signal.SIGTERM)
                    process.wait(30)
    completed = [e for e in events if e.type == "block.completed"]
    assert record.status == "completed"
    assert len(completed) == 1 and completed[0].data["attempt"] == 2
    assert record.block("slow").output == second.pid  # the late result of attempt 1 lost
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed"), (2, "completed")]
    assert attempts[0].error is not None and attempts[0].error["type"] == "WorkerLost"
    assert events[-1].type == "run.completed"
