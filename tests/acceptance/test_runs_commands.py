"""``flowforge runs start / cancel / terminate / pause / resume / retry / events`` (SPEC 3, 4)
on a store shared by several ``flowforge`` processes, as a user runs them, on both stores."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli, wait_for

RUN_ID = re.compile(r"run_[0-9a-f]{32}")
FINAL = {"run.completed", "run.failed", "run.canceled", "run.terminated", "run.timed_out"}

MODULE = """
import time
from pathlib import Path

def add(a, b):
    return a + b

def hold(started, release, ctx):
    # tells the test it runs, then waits for the release file (or a cancel)
    Path(started).write_text("running")
    deadline = time.monotonic() + 60
    while not Path(release).exists() and not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    return "released"

def needs(path):
    if not Path(path).exists():
        raise RuntimeError(f"{path} is missing")
    return "found"
"""

SUMS_V1 = """
    id: sums
    parameters:
      n: {type: integer, required: true}
    blocks:
      - id: total
        type: python
        function: runmod:add
        args: {a: "{{ params.n }}", b: 1}
"""
SUMS_V2 = SUMS_V1.replace("b: 1", "b: 100")


@pytest.fixture
def cli(tmp_path: Path, store_url: str) -> Cli:
    """Every test runs on SQLite and on PostgreSQL (when ``make test`` finds it)."""
    cli = Cli(tmp_path, database_url=store_url)
    cli.module("runmod", MODULE)
    return cli


@pytest.fixture
def background(cli: Cli) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``background(*args)``: a ``flowforge`` process of the test; killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def spawn(*args: str | Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            cli.command(*args),
            env=cli.env,
            cwd=cli.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _apply(cli: Cli, name: str, text: str) -> None:
    applied = cli("workflows", "apply", cli.write(name, text))
    assert applied.returncode == 0, applied


def _record(cli: Cli, run_id: str) -> dict[str, Any]:
    shown = cli("runs", "show", run_id, "--json")
    assert shown.returncode == 0, shown
    record: dict[str, Any] = shown.json()
    return record


def _blocks(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in record["blocks"]}


# -- runs start -----------------------------------------------------------------------------


def test_start_queues_the_run_and_returns_at_once(cli: Cli, tmp_path: Path) -> None:
    started = tmp_path / "started"
    _apply(
        cli,
        "held.yaml",
        f"""
        id: held
        blocks:
          - id: hold
            type: python
            function: runmod:hold
            args: {{started: "{started}", release: "{tmp_path / "release"}"}}
        """,
    )

    result = cli("runs", "start", "held", timeout=20)

    assert result.returncode == 0, result
    run_id = result.stdout.strip()
    assert RUN_ID.fullmatch(run_id), result
    time.sleep(0.5)
    record = _record(cli, run_id)
    assert record["status"] == "queued" and record["started_at"] is None
    assert not started.exists(), "start must not run the run"
    events = cli("runs", "events", run_id, "--json").json()
    assert [e["type"] for e in events] == ["run.queued"]

    as_json = cli("runs", "start", "held", "--json")
    assert as_json.returncode == 0, as_json
    assert as_json.json()["status"] == "queued" and as_json.json()["workflow_id"] == "held"


def test_a_started_run_is_run_by_resume_with_its_parameters(cli: Cli) -> None:
    _apply(cli, "sums.yaml", SUMS_V1)
    params_file = cli.write("params.yaml", "n: 7\n")

    run_id = cli("runs", "start", "sums", "--params-file", params_file).stdout.strip()
    overridden = cli("runs", "start", "sums", "--params-file", params_file, "-p", "n=40")

    done = cli("resume", run_id, "--json")
    assert done.returncode == 0, done
    assert done.json()["status"] == "completed" and done.json()["outputs"] == {"total": 8}
    again = cli("resume", overridden.stdout.strip(), "--json").json()
    assert again["parameters"] == {"n": 40} and again["outputs"] == {"total": 41}


def test_version_pins_an_older_version_and_creates_none(cli: Cli) -> None:
    _apply(cli, "sums.yaml", SUMS_V1)
    _apply(cli, "sums.yaml", SUMS_V2)

    pinned = cli("runs", "start", "sums", "-p", "n=1", "--version", "1", "--json")
    latest = cli("runs", "start", "sums", "-p", "n=1", "--json")

    assert pinned.returncode == 0, pinned
    assert pinned.json()["workflow_version"] == 1
    assert latest.json()["workflow_version"] == 2
    versions = cli("workflows", "versions", "sums", "--json").json()
    assert [v["version"] for v in versions] == [1, 2], "starting a run must not add a version"
    assert cli("resume", pinned.json()["run_id"], "--json").json()["outputs"] == {"total": 2}
    assert cli("resume", latest.json()["run_id"], "--json").json()["outputs"] == {"total": 101}


def test_the_same_idempotency_key_returns_the_same_run(cli: Cli) -> None:
    _apply(cli, "sums.yaml", SUMS_V1)

    first = cli("runs", "start", "sums", "-p", "n=1", "--idempotency-key", "order-42")
    second = cli("runs", "start", "sums", "-p", "n=1", "--idempotency-key", "order-42")
    other = cli("runs", "start", "sums", "-p", "n=1", "--idempotency-key", "order-43")

    assert first.returncode == 0 and second.returncode == 0, second
    assert first.stdout.strip() == second.stdout.strip()
    assert other.stdout.strip() != first.stdout.strip()
    assert len(cli("runs", "list", "--json").json()) == 2


def test_start_of_an_unknown_workflow_or_version_or_bad_parameters(cli: Cli) -> None:
    _apply(cli, "sums.yaml", SUMS_V1)

    unknown = cli("runs", "start", "nope")
    assert unknown.returncode == 1, unknown
    assert unknown.stderr.strip() == "error: workflow nope does not exist"

    no_version = cli("runs", "start", "sums", "-p", "n=1", "--version", "9")
    assert no_version.returncode == 1, no_version
    assert no_version.stderr.strip() == "error: workflow sums has no version 9"

    bad = cli("runs", "start", "sums", "-p", "n=x")
    assert bad.returncode == 2, bad
    assert "params.n" in bad.stderr and "Traceback" not in bad.stderr
    assert cli("runs", "list", "--json").json() == []


# -- controls ----------------------------------------------------------------------------------


def test_controls_of_a_queued_run_and_controls_that_do_not_fit(cli: Cli) -> None:
    _apply(cli, "sums.yaml", SUMS_V1)
    run_id = cli("runs", "start", "sums", "-p", "n=1").stdout.strip()

    for control in ("pause", "resume", "retry"):
        refused = cli("runs", control, run_id)
        assert refused.returncode == 1, refused
        assert refused.stderr.strip() == f"error: cannot {control} run {run_id}: it is queued"

    canceled = cli("runs", "cancel", run_id, "--reason", "not needed", "--json")
    assert canceled.returncode == 0, canceled
    record = canceled.json()
    assert record["status"] == "canceled" and record["failure_reason"] == "not needed"
    assert record["finished_at"] is not None
    assert record == _record(cli, run_id)

    again = cli("runs", "cancel", run_id)
    assert again.returncode == 1 and "it is canceled" in again.stderr, again

    for control in ("cancel", "terminate", "pause", "resume", "retry"):
        missing = cli("runs", control, "run_nope")
        assert missing.returncode == 1, missing
        assert missing.stderr.strip() == "error: run run_nope does not exist"


def test_terminate_with_a_reason(cli: Cli) -> None:
    _apply(cli, "sums.yaml", SUMS_V1)
    run_id = cli("runs", "start", "sums", "-p", "n=1").stdout.strip()

    plain = cli("runs", "terminate", run_id, "--reason", "wrong order")

    assert plain.returncode == 0, plain
    assert plain.stdout.strip() == f"{run_id} terminated (wrong order)"
    record = _record(cli, run_id)
    assert record["status"] == "terminated" and record["failure_reason"] == "wrong order"
    assert [e["type"] for e in cli("runs", "events", run_id, "--json").json()][-1] == (
        "run.terminated"
    )


def _held_workflow(cli: Cli, tmp_path: Path) -> tuple[Path, Path, Path]:
    started, release = tmp_path / "started", tmp_path / "release"
    path = cli.write(
        "held.yaml",
        f"""
        id: held
        blocks:
          - id: hold
            type: python
            function: runmod:hold
            args: {{started: "{started}", release: "{release}"}}
          - id: after
            type: transform
            depends_on: [hold]
            value: "done"
        """,
    )
    return path, started, release


def _running(
    cli: Cli, tmp_path: Path, background: Callable[..., subprocess.Popen[str]]
) -> tuple[subprocess.Popen[str], str, Path]:
    """``flowforge run`` in the background, its first block running: (process, run, release)."""
    path, started, release = _held_workflow(cli, tmp_path)
    process = background("run", path, "--json")
    wait_for(lambda: started.exists() or process.poll() is not None, 30, "the block to start")
    assert process.poll() is None, process.communicate()
    [run] = cli("runs", "list", "--json").json()
    return process, run["run_id"], release


def test_cancel_reaches_a_run_in_progress_in_another_process(
    cli: Cli, tmp_path: Path, background: Callable[..., subprocess.Popen[str]]
) -> None:
    process, run_id, _ = _running(cli, tmp_path, background)

    canceled = cli("runs", "cancel", run_id, "--json")

    assert canceled.returncode == 0, canceled
    assert canceled.json()["status"] == "canceled"
    process.wait(timeout=5)  # the running process sees the cancel and ends the block
    stdout, _ = process.communicate()
    assert process.returncode == 1
    record = json.loads(stdout)
    assert record["status"] == "canceled"
    assert _blocks(record)["hold"]["status"] == "canceled"
    assert _blocks(record)["after"]["status"] == "pending"


def test_terminate_reaches_a_run_in_progress_in_another_process(
    cli: Cli, tmp_path: Path, background: Callable[..., subprocess.Popen[str]]
) -> None:
    process, run_id, _ = _running(cli, tmp_path, background)

    terminated = cli("runs", "terminate", run_id, "--reason", "stop now")

    assert terminated.returncode == 0, terminated
    assert terminated.stdout.strip() == f"{run_id} terminated (stop now)"
    process.wait(timeout=5)
    assert process.returncode == 1
    record = _record(cli, run_id)
    assert record["status"] == "terminated" and record["failure_reason"] == "stop now"
    assert _blocks(record)["after"]["status"] == "pending"


def test_pause_lets_the_running_block_finish_and_resume_goes_on(
    cli: Cli, tmp_path: Path, background: Callable[..., subprocess.Popen[str]]
) -> None:
    process, run_id, release = _running(cli, tmp_path, background)

    paused = cli("runs", "pause", run_id, "--json")

    assert paused.returncode == 0, paused
    assert paused.json()["status"] == "paused"
    release.write_text("go")
    wait_for(
        lambda: _blocks(_record(cli, run_id))["hold"]["status"] == "completed",
        10,
        "the running block to finish while paused",
    )
    time.sleep(0.5)
    record = _record(cli, run_id)
    assert record["status"] == "paused"
    assert _blocks(record)["after"]["status"] == "pending", "a paused run starts nothing new"
    assert process.poll() is None

    resumed = cli("runs", "resume", run_id)

    assert resumed.returncode == 0, resumed
    assert resumed.stdout.strip() == f"{run_id} running"
    process.wait(timeout=10)  # the process that runs the run goes on and completes it
    stdout, _ = process.communicate()
    assert process.returncode == 0
    assert json.loads(stdout)["outputs"] == {"after": "done"}
    types = [e["type"] for e in cli("runs", "events", run_id, "--json").json()]
    assert "run.paused" in types and "run.resumed" in types and types[-1] == "run.completed"


def test_retry_continues_a_failed_run_keeping_completed_blocks(cli: Cli, tmp_path: Path) -> None:
    needed = tmp_path / "needed"
    path = cli.write(
        "flaky.yaml",
        f"""
        id: flaky
        blocks:
          - id: first
            type: python
            function: runmod:add
            args: {{a: 1, b: 2}}
          - id: second
            type: python
            function: runmod:needs
            depends_on: [first]
            args: {{path: "{needed}"}}
        """,
    )
    failed = cli("run", path, "--json")
    assert failed.returncode == 1, failed
    run_id = failed.json()["run_id"]
    assert failed.json()["status"] == "failed"

    needed.write_text("here")
    retried = cli("runs", "retry", run_id, "--json")

    assert retried.returncode == 0, retried
    record = retried.json()
    assert record["status"] == "running" and record["finished_at"] is None
    assert _blocks(record)["first"]["status"] == "completed"
    done = cli("resume", run_id, "--json")
    assert done.returncode == 0, done
    blocks = _blocks(done.json())
    assert done.json()["status"] == "completed"
    assert blocks["first"]["attempts"] == 1, "a completed block keeps its output"
    assert blocks["second"]["output"] == "found"
    again = cli("runs", "retry", run_id)
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: cannot retry run {run_id}: it is completed"


# -- runs events ------------------------------------------------------------------------------


def test_events_follow_prints_json_lines_until_the_final_event(
    cli: Cli, background: Callable[..., subprocess.Popen[str]]
) -> None:
    _apply(cli, "sums.yaml", SUMS_V1)
    run_id = cli("runs", "start", "sums", "-p", "n=2").stdout.strip()
    follow = background("runs", "events", run_id, "--follow", "--json")
    first = follow.stdout.readline() if follow.stdout else ""
    assert json.loads(first)["type"] == "run.queued", first
    assert follow.poll() is None, "the run has not ended: follow goes on"

    runner = background("resume", run_id)

    rest, stderr = follow.communicate(timeout=30)
    assert follow.returncode == 0, stderr
    events = [json.loads(line) for line in [first, *rest.splitlines()]]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "run.completed"
    assert events[-1]["data"] == {"outputs": {"total": 3}}
    assert {"run.started", "block.started", "block.completed"} <= {e["type"] for e in events}
    assert events == cli("runs", "events", run_id, "--json").json()
    runner.communicate(timeout=30)


def test_events_follow_of_a_retried_run_goes_past_its_earlier_end(
    cli: Cli, tmp_path: Path, background: Callable[..., subprocess.Popen[str]]
) -> None:
    needed = tmp_path / "needed"
    _apply(
        cli,
        "flaky.yaml",
        f"""
        id: flaky
        blocks:
          - id: second
            type: python
            function: runmod:needs
            args: {{path: "{needed}"}}
        """,
    )
    run_id = cli("runs", "start", "flaky").stdout.strip()
    assert cli("resume", run_id).returncode == 1
    needed.write_text("here")
    assert cli("runs", "retry", run_id).returncode == 0

    follow = background("runs", "events", run_id, "--follow")
    time.sleep(1)
    assert follow.poll() is None, "run.failed is not the last event any more"
    background("resume", run_id)

    stdout, stderr = follow.communicate(timeout=30)
    assert follow.returncode == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "TYPE", "BLOCK", "DATA"]
    types = [line.split()[3] for line in lines[1:]]
    assert types[:2] == ["run.queued", "run.started"]
    assert "run.failed" in types and "run.retried" in types
    assert types[-1] == "run.completed"


def test_events_of_an_ended_run_and_follow_that_ends_at_once(cli: Cli) -> None:
    _apply(cli, "sums.yaml", SUMS_V1)
    run_id = cli("runs", "start", "sums", "-p", "n=2").stdout.strip()
    assert cli("resume", run_id).returncode == 0

    past = cli("runs", "events", run_id, "--json")
    followed = cli("runs", "events", run_id, "--follow", "--json", timeout=10)
    plain = cli("runs", "events", run_id)

    assert past.returncode == 0 and followed.returncode == 0, followed
    assert [json.loads(line) for line in followed.stdout.splitlines()] == past.json()
    assert past.json()[-1]["type"] in FINAL
    rows = plain.stdout.splitlines()
    assert rows[0].split() == ["SEQ", "TIME", "TYPE", "BLOCK", "DATA"]
    assert rows[1].split()[0] == "1" and "run.queued" in rows[1]
    assert cli("runs", "events", "run_nope", "--follow").returncode == 1


def test_ctrl_c_ends_a_follow_with_130(
    cli: Cli, background: Callable[..., subprocess.Popen[str]]
) -> None:
    _apply(cli, "sums.yaml", SUMS_V1)
    run_id = cli("runs", "start", "sums", "-p", "n=2").stdout.strip()
    follow = background("runs", "events", run_id, "--follow", "--json")
    first = follow.stdout.readline() if follow.stdout else ""
    assert json.loads(first)["seq"] == 1

    follow.send_signal(signal.SIGINT)

    _, stderr = follow.communicate(timeout=10)
    assert follow.returncode == 130, stderr
    assert "Traceback" not in stderr
