"""The ``flowforge`` command (SPEC 4) as a user runs it: exit codes, output, the run record."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

from cli_runner import Cli

RUN_ID = re.compile(r"\brun_[0-9a-f]{32}\b")
RECORD_KEYS = {
    "run_id",
    "workflow_id",
    "workflow_version",
    "status",
    "parameters",
    "outputs",
    "failure_reason",
    "created_at",
    "started_at",
    "finished_at",
    "blocks",
}
BLOCK_KEYS = {
    "block_id",
    "type",
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "output",
    "error",
}
SECRET = "sup3r-s3cret-Val"

MATH = """
    def add(a, b):
        return a + b

    def bearer(token):
        return f"Bearer {token}"

    def leak(token):
        raise RuntimeError(f"cannot log in with {token}")
"""

SUM = """
    id: sums
    parameters:
      n: {type: integer, required: true}
      factor: {type: number, default: 2}
    blocks:
      - id: double
        type: transform
        value: "{{ params.n * params.factor }}"
      - id: total
        type: python
        function: mathmod:add
        args: {a: "{{ blocks.double.output }}", b: "{{ params.n }}"}
    outputs:
      total: "{{ blocks.total.output }}"
"""


def test_run_prints_the_outputs_and_progress_and_exits_0(cli: Cli) -> None:
    cli.module("mathmod", MATH)
    path = cli.write("sums.yaml", SUM)

    result = cli("run", path, "-p", "n=3")

    assert result.returncode == 0, result
    assert json.loads(result.stdout) == {"total": 9}
    assert RUN_ID.search(result.stderr.splitlines()[0]), result
    assert re.search(r"^\d\d:\d\d:\d\d total +started \(attempt 1\)$", result.stderr, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d run +completed", result.stderr, re.M)


def test_python_dash_m_flowforge_is_the_same_command(cli: Cli) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flowforge", "--version"],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.startswith("flowforge "), done


def test_run_json_prints_exactly_the_run_record_with_secrets_masked(cli: Cli) -> None:
    cli.module("mathmod", MATH)
    path = cli.write(
        "secret.yaml",
        """
        id: secretive
        parameters:
          token: {type: secret, source: env:FF_ACCEPTANCE_TOKEN}
          n: {type: integer, default: 1}
        blocks:
          - id: length
            type: transform
            value: "{{ secrets.token | length }}"
          - id: header
            type: python
            function: mathmod:bearer
            args: {token: "{{ secrets.token }}"}
          - id: login
            type: python
            function: mathmod:leak
            args: {token: "{{ secrets.token }}"}
            continue_on_failure: true
        outputs:
          length: "{{ blocks.length.output }}"
          header: "{{ blocks.header.output }}"
    """,
    )

    result = cli("run", path, "--json", env={"FF_ACCEPTANCE_TOKEN": SECRET})

    assert result.returncode == 0, result
    record = result.json()  # stdout is the record and nothing else
    assert set(record) == RECORD_KEYS
    assert RUN_ID.fullmatch(record["run_id"])
    assert record["workflow_id"] == "secretive" and record["workflow_version"] == 1
    assert record["status"] == "completed" and record["failure_reason"] is None
    assert record["parameters"] == {"token": "***", "n": 1}
    assert record["outputs"]["length"] == len(SECRET)
    assert record["outputs"]["header"] == "Bearer ***"
    assert [b["block_id"] for b in record["blocks"]] == ["length", "header", "login"]
    for block in record["blocks"]:
        assert set(block) == BLOCK_KEYS
    login = record["blocks"][2]
    assert login["status"] == "failed" and login["error"]["type"] == "RuntimeError"
    assert record["created_at"] and record["started_at"] and record["finished_at"]

    assert SECRET not in result.stdout and SECRET not in result.stderr
    assert record["run_id"] in result.stderr  # the run id is announced on stderr
    stored = b"".join(p.read_bytes() for p in cli.dir.glob("flowforge.db*"))
    assert stored, "the SQLite store was not written where expected"
    assert SECRET.encode() not in stored


def test_invalid_definition_exits_2_with_every_problem_and_its_line(cli: Cli) -> None:
    path = cli.write(
        "order.yaml",
        """
        id: order
        blocks:
          - id: fetch
            type: noop
          - id: total
            type: transform
            value: "{{ params.missing }}"
          - id: notify
            type: noop
            depends_on: [fecth]
          - id: odd
            type: nosuch
    """,
    )

    for command in (["run", path], ["validate", path]):
        result = cli(*command)
        assert result.returncode == 2, result
        text = result.stdout + result.stderr
        assert "order.yaml: blocks[1].value (line 7): unknown parameter 'missing'" in text
        assert "order.yaml: blocks[2].depends_on[0] (line 10): unknown block 'fecth'" in text
        assert re.search(r"order\.yaml: blocks\[3\]\.type \(line 12\): unknown block type", text)
        assert "Traceback" not in text


def test_a_missing_file_exits_2_naming_the_path(cli: Cli) -> None:
    result = cli("run", "no/such/flow.yaml")
    assert result.returncode == 2, result
    assert "no/such/flow.yaml: cannot read the file" in result.stderr
    assert "Traceback" not in result.stderr


def test_parameters_are_checked_before_the_run_and_coerced_from_strings(cli: Cli) -> None:
    cli.module("mathmod", MATH)
    path = cli.write("sums.yaml", SUM)

    missing = cli("run", path)
    assert missing.returncode == 2, missing
    assert "params.n: required parameter is missing" in missing.stderr

    wrong = cli("run", path, "-p", "n=three", "-p", "colour=red")
    assert wrong.returncode == 2, wrong
    assert "params.n: must be an integer" in wrong.stderr
    assert "params.colour: unknown parameter" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    params = cli.write("params.yaml", "n: 10\nfactor: 0.5\n")
    coerced = cli("run", path, "--params-file", params, "-p", "factor=3", "--json")
    assert coerced.returncode == 0, coerced
    assert coerced.json()["parameters"] == {"n": 10, "factor": 3}
    assert coerced.json()["outputs"] == {"total": 40}

    runs = cli("runs", "list", "--json")
    assert len(runs.json()) == 1  # the refused runs were never created


def test_a_failing_workflow_exits_1_and_says_why(cli: Cli) -> None:
    path = cli.write(
        "failing.yaml",
        """
        id: failing
        blocks:
          - id: boom
            type: fail
            message: it broke
          - id: after
            type: noop
            depends_on: [boom]
    """,
    )

    result = cli("run", path)
    assert result.returncode == 1, result
    assert "failed" in result.stderr and "it broke" in result.stderr

    record = cli("run", path, "--json")
    assert record.returncode == 1
    assert record.json()["status"] == "failed"
    assert {b["block_id"]: b["status"] for b in record.json()["blocks"]} == {
        "boom": "failed",
        "after": "skipped",
    }


def test_validate_checks_every_file(cli: Cli) -> None:
    good = cli.write("good.yaml", "id: good\nblocks:\n  - {id: a, type: noop}\n")
    bad = cli.write("bad.yaml", "id: bad\nblocks:\n  - {id: a, type: noop, depends_on: [b]}\n")

    ok = cli("validate", good)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{good}: ok", ok

    both = cli("validate", good, bad, "--json")
    assert both.returncode == 2, both
    report = both.json()
    assert [entry["valid"] for entry in report] == [True, False]
    assert report[1]["problems"][0]["location"] == "blocks[0].depends_on[0]"
    assert report[1]["problems"][0]["line"] == 3


def test_workflows_apply_list_show_versions_delete(cli: Cli) -> None:
    path = cli.write("flow.yaml", "id: flow\ntitle: A flow\nblocks:\n  - {id: a, type: noop}\n")

    first = cli("workflows", "apply", path, "--json")
    again = cli("workflows", "apply", path, "--json")
    assert first.json() == {"workflow_id": "flow", "version": 1, "created": True}, first
    assert again.json() == {"workflow_id": "flow", "version": 1, "created": False}, again

    path.write_text(
        "id: flow\ntitle: A flow\nblocks:\n  - {id: a, type: noop}\n  - {id: b, type: noop}\n"
    )
    changed = cli("workflows", "apply", path)
    assert changed.returncode == 0 and "flow version 2 (created)" in changed.stdout, changed

    listed = cli("workflows", "list", "--json").json()
    assert [(w["workflow_id"], w["latest_version"], w["title"]) for w in listed] == [
        ("flow", 2, "A flow")
    ]
    assert "flow" in cli("workflows", "list").stdout

    shown = cli("workflows", "show", "flow", "--version", "1", "--json").json()
    assert shown["version"] == 1 and [b["id"] for b in shown["definition"]["blocks"]] == ["a"]
    assert "id: b" in cli("workflows", "show", "flow").stdout

    versions = cli("workflows", "versions", "flow", "--json").json()
    assert [v["version"] for v in versions] == [1, 2]

    assert cli("workflows", "delete", "flow").returncode == 0
    assert cli("workflows", "list", "--json").json() == []
    gone = cli("workflows", "show", "flow")
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_runs_list_show_and_events(cli: Cli) -> None:
    cli.module("mathmod", MATH)
    path = cli.write("sums.yaml", SUM)
    first = cli("run", path, "-p", "n=1", "--json").json()
    second = cli("run", path, "-p", "n=2", "--json").json()

    listed = cli("runs", "list", "--json").json()
    assert [r["run_id"] for r in listed] == [second["run_id"], first["run_id"]]
    assert all(set(r) == RECORD_KEYS for r in listed)
    assert len(cli("runs", "list", "--limit", "1", "--json").json()) == 1
    assert cli("runs", "list", "--workflow", "other", "--json").json() == []
    assert len(cli("runs", "list", "--status", "completed", "--json").json()) == 2

    shown = cli("runs", "show", first["run_id"], "--json").json()
    assert shown == first
    text = cli("runs", "show", first["run_id"]).stdout
    assert "completed" in text and "total" in text

    events = cli("runs", "events", first["run_id"], "--json").json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run.queued" and events[-1]["type"] == "run.completed"
    assert {"block.started", "block.completed"} <= {e["type"] for e in events}


def test_an_unknown_run_id_is_one_line_and_exit_1(cli: Cli) -> None:
    for command in (
        ["runs", "show", "run_nope"],
        ["resume", "run_nope"],
        ["runs", "events", "run_nope"],
    ):
        result = cli(*command)
        assert result.returncode == 1, result
        assert result.stderr.strip() == "error: run run_nope does not exist", result


def test_db_upgrade_is_idempotent(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    first = cli("db", "upgrade", "--database-url", url)
    second = cli("db", "upgrade", "--database-url", url)
    assert first.returncode == 0 and "upgraded" in first.stdout, first
    assert second.returncode == 0 and "up to date" in second.stdout, second
    assert cli("runs", "list", "--json", "--database-url", url).json() == []


def test_resume_of_a_finished_run_prints_its_record(cli: Cli) -> None:
    cli.module("mathmod", MATH)
    record = cli("run", cli.write("sums.yaml", SUM), "-p", "n=1", "--json").json()
    again = cli("resume", record["run_id"], "--json")
    assert again.returncode == 0 and again.json() == record, again


def test_detach_returns_at_once_and_the_run_completes_in_the_background(cli: Cli) -> None:
    cli.module("mathmod", MATH)
    path = cli.write("sums.yaml", SUM)

    result = cli("run", path, "-p", "n=4", "--detach")

    assert result.returncode == 0, result
    run_id = result.stdout.strip()
    assert RUN_ID.fullmatch(run_id), result
    deadline = time.monotonic() + 30
    while True:
        record = cli("runs", "show", run_id, "--json").json()
        if record["status"] == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert record["status"] == "completed", record
    assert record["outputs"] == {"total": 12}
    assert (cli.home / "logs" / f"{run_id}.log").exists()


def test_on_a_terminal_the_progress_is_a_live_view_and_stdout_keeps_the_outputs(cli: Cli) -> None:
    cli.module("mathmod", MATH)
    path = cli.write("sums.yaml", SUM)
    master, slave = pty.openpty()
    process = subprocess.Popen(
        cli.command("run", path, "-p", "n=2"),
        env=cli.env,
        cwd=cli.dir,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    stdout, _ = process.communicate(timeout=60)

    assert process.returncode == 0, screen.decode(errors="replace")
    assert json.loads(stdout) == {"total": 6}
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert RUN_ID.search(text)
    assert re.search(r"total\s+python\s+completed\s+1", text), text
    assert "2 completed" in text


def test_an_unusable_database_url_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    for url in ("mysql://x/y", "sqlite:///:memory:", "postgresql://nobody@127.0.0.1:1/none"):
        done = cli("runs", "list", "--database-url", url)
        assert done.returncode == 2, (url, done)
        assert done.stderr.startswith("error: "), done.stderr
        assert "Traceback" not in done.stderr
