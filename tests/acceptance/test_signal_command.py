"""``flowforge runs signal`` (issue 3): a signal from another process reaches a run that a
``flowforge run`` or a ``flowforge worker`` is running, and bad signals exit 2."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from cli_runner import Cli, wait_for

RUN_ID = re.compile(r"run_[0-9a-f]{32}")
APPROVAL = """
    id: approval
    blocks:
      - id: ask
        type: wait_for_signal
        signal: approved
        schema: {type: object, required: [by]}
      - id: after
        type: transform
        value: "approved by {{ blocks.ask.output.by }}"
"""


@pytest.fixture
def cli(tmp_path: Path, store_url: str) -> Cli:
    return Cli(tmp_path, database_url=store_url)


def _waiting(cli: Cli, run_id: str) -> bool:
    shown = cli("runs", "show", run_id, "--json")
    return shown.returncode == 0 and any(
        b["block_id"] == "ask" and b["status"] == "waiting" for b in shown.json()["blocks"]
    )


def test_a_signal_from_another_process_ends_the_wait_of_flowforge_run(cli: Cli) -> None:
    path = cli.write("approval.yaml", APPROVAL)
    process = subprocess.Popen(
        cli.command("run", path, "--json"),
        env=cli.env,
        cwd=cli.dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = RUN_ID.search(line)
        assert found, line
        run_id = found.group(0)
        wait_for(lambda: _waiting(cli, run_id), 10, "the block to wait")

        bad = cli("runs", "signal", run_id, "approved", "--payload", '{"who": 1}')
        assert bad.returncode == 2, bad
        assert "'by' is a required property" in bad.stderr
        unknown = cli("runs", "signal", run_id, "aproved", "--payload", "{}")
        assert unknown.returncode == 2 and "(it waits for: approved)" in unknown.stderr
        not_json = cli("runs", "signal", run_id, "approved", "--payload", "{by")
        assert not_json.returncode == 2 and "--payload is not valid JSON" in not_json.stderr

        sent = cli("runs", "signal", run_id, "approved", "--payload", '{"by": "ada"}')
        assert sent.returncode == 0, sent
        started = time.monotonic()
        stdout, _ = process.communicate(timeout=20)
        assert time.monotonic() - started < 5  # noticed within the watch interval
        assert process.returncode == 0
        assert '"after": "approved by ada"' in stdout
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_worker_runs_the_rest_after_the_signal(cli: Cli) -> None:
    path = cli.write("approval.yaml", APPROVAL)
    assert cli("workflows", "apply", path).returncode == 0
    worker = subprocess.Popen(
        cli.command("worker", "--quiet"),
        env=cli.env,
        cwd=cli.dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        queued = cli("runs", "start", "approval")
        assert queued.returncode == 0, queued
        run_id = queued.stdout.strip()
        # an early signal is kept until the block waits
        early = cli("runs", "signal", run_id, "approved", "--payload", '{"by": "bob"}')
        assert early.returncode == 0, early

        def done() -> bool:
            shown = cli("runs", "show", run_id, "--json")
            return shown.returncode == 0 and shown.json()["status"] == "completed"

        wait_for(done, 20, "the run to complete")
        assert cli("runs", "show", run_id, "--json").json()["outputs"] == {
            "after": "approved by bob"
        }
        late = cli("runs", "signal", run_id, "approved", "--payload", '{"by": "x"}')
        assert late.returncode == 1 and "it is completed" in late.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=30)
