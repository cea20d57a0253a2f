"""``command`` blocks (issue 4): argv without a shell, a minimal environment, cwd, stdin, exit
codes, the output cap, the block log, timeouts and cancels that reach every process the command
started, and the server policy that refuses commands unless configured.

Every command is a real process; the engine runs on both stores.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from integration_kit import async_wait_until, wait_until

import flowforge
from flowforge.blocks.command import CommandBlock
from flowforge.blocks.context import BlockContext
from flowforge.blocks.policy import BlockPolicy
from flowforge.errors import NonRetryableError

PY = sys.executable
CANARY = "ff-command-canary-7d41c2"


def _workflow(
    *blocks: dict[str, Any], parameters: dict[str, Any] | None = None
) -> flowforge.Workflow:
    return flowforge.Workflow.from_dict(
        {"id": "commands", "parameters": parameters or {}, "blocks": list(blocks)}
    )


def _one(block: dict[str, Any], **parameters: Any) -> flowforge.Workflow:
    return _workflow({"id": "cmd", "type": "command", **block}, parameters=parameters or None)


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


# -- what a command gets and gives --------------------------------------------------------------


def test_argv_elements_are_templates_and_the_output_has_exit_code_stdout_and_stderr(
    engine: flowforge.Engine,
) -> None:
    script = "import sys; print('out', *sys.argv[1:]); print('err line', file=sys.stderr)"
    wf = _one(
        {
            "argv": [
                PY,
                "-c",
                script,
                "{{ params.name }}",
                "{{ params.count }}",
                "x{{ params.count }}",
            ]
        },
        name={"type": "string"},
        count={"type": "integer"},
    )

    result = engine.run(wf, {"name": "Ada Lovelace", "count": 3})

    assert result.status == "completed", result.block("cmd").error
    assert result.block("cmd").output == {
        "exit_code": 0,
        "stdout": "out Ada Lovelace 3 x3\n",
        "stderr": "err line\n",
    }


def test_a_whole_argv_template_gives_the_list(engine: flowforge.Engine) -> None:
    wf = _one({"argv": "{{ params.argv }}"}, argv={"type": "array"})

    result = engine.run(wf, {"argv": ["echo", "a", 1, 2.5, True]})

    assert result.block("cmd").output["stdout"] == "a 1 2.5 true\n"


def test_argv_goes_to_the_program_as_is_never_through_a_shell(
    engine: flowforge.Engine, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("still here")
    tricky = ["$HOME", "`id`", "$(id)", f"; rm {victim}", "a b", "*", "'\"", "| cat"]

    result = engine.run(_one({"argv": ["echo", *tricky]}))

    assert result.block("cmd").output["stdout"] == " ".join(tricky) + "\n"
    assert victim.read_text() == "still here"


def test_env_is_minimal_the_engine_environment_is_not_inherited(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FF_TEST_CANARY", CANARY)
    monkeypatch.setenv("FLOWFORGE_DATABASE_URL", f"postgresql://user:{CANARY}@db/flowforge")
    wf = _one(
        {"argv": ["env"], "env": {"GREETING": "hello {{ params.who }}", "N": "{{ params.n }}"}},
        who={"type": "string"},
        n={"type": "integer"},
    )

    result = engine.run(wf, {"who": "world", "n": 7})

    stdout = result.block("cmd").output["stdout"]
    seen = dict(line.split("=", 1) for line in stdout.splitlines())
    assert CANARY not in stdout
    assert seen["GREETING"] == "hello world"
    assert seen["N"] == "7"
    assert seen["PATH"] == os.environ["PATH"]
    assert set(seen) <= {"GREETING", "N", "PATH", "HOME", "LANG", "TZ", "TMPDIR"}


def test_env_can_replace_path(engine: flowforge.Engine, tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "mytool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho my tool ran\n")
    tool.chmod(0o755)

    result = engine.run(_one({"argv": ["mytool"], "env": {"PATH": str(tool.parent)}}))

    assert result.block("cmd").output["stdout"] == "my tool ran\n"


def test_cwd_is_the_working_directory(engine: flowforge.Engine, tmp_path: Path) -> None:
    (tmp_path / "here.txt").write_text("found me")
    wf = _one({"argv": ["cat", "here.txt"], "cwd": "{{ params.dir }}"}, dir={"type": "string"})

    result = engine.run(wf, {"dir": str(tmp_path)})

    assert result.block("cmd").output["stdout"] == "found me"


def test_a_missing_cwd_fails_without_retry(engine: flowforge.Engine, tmp_path: Path) -> None:
    wf = _one(
        {
            "argv": ["true"],
            "cwd": str(tmp_path / "nowhere"),
            "retry": {"max_attempts": 3, "initial_interval": "10ms"},
        }
    )

    block = engine.run(wf).block("cmd")

    assert block.status == "failed"
    assert block.attempts == 1
    assert block.error is not None and block.error["type"] == "InvalidInput"
    assert (
        "nowhere" in block.error["message"]
        and "not an existing directory" in block.error["message"]
    )


def test_stdin_text_and_json_values(engine: flowforge.Engine) -> None:
    wf = _workflow(
        {"id": "text", "type": "command", "argv": ["cat"], "stdin": "line 1\nline 2\n"},
        {"id": "data", "type": "command", "argv": ["cat"], "stdin": "{{ params.data }}"},
        {"id": "none", "type": "command", "argv": ["cat"]},
        parameters={"data": {"type": "object"}},
    )

    result = engine.run(wf, {"data": {"a": [1, 2]}})

    assert result.block("text").output["stdout"] == "line 1\nline 2\n"
    assert result.block("data").output["stdout"] == '{"a": [1, 2]}'
    assert result.block("none").output["stdout"] == ""  # stdin is /dev/null: cat ends at once


def test_a_program_that_ignores_a_large_stdin_still_completes(engine: flowforge.Engine) -> None:
    wf = _one({"argv": ["true"], "stdin": "x" * 5_000_000})

    result = engine.run(wf)

    assert result.status == "completed"
    assert result.block("cmd").output["exit_code"] == 0


# -- failures -----------------------------------------------------------------------------------


def test_a_non_zero_exit_fails_the_attempt_with_the_code_and_the_end_of_stderr(
    engine: flowforge.Engine,
) -> None:
    script = (
        "import sys\n"
        "print('noise ' * 500, file=sys.stderr)\n"
        "print('disk full: cannot write /data/out', file=sys.stderr)\n"
        "sys.exit(3)"
    )
    wf = _one(
        {"argv": [PY, "-c", script], "retry": {"max_attempts": 2, "initial_interval": "10ms"}}
    )

    block = engine.run(wf).block("cmd")

    assert block.status == "failed"
    assert block.attempts == 2  # CommandFailed is retryable
    assert block.error is not None
    assert block.error["type"] == "CommandFailed"
    assert "exited with code 3" in block.error["message"]
    assert block.error["message"].endswith("disk full: cannot write /data/out")
    assert len(block.error["message"]) < 1_200


def test_a_failed_command_is_retried_and_can_succeed(
    engine: flowforge.Engine, tmp_path: Path
) -> None:
    marker = tmp_path / "tried"
    script = f"test -e {marker} || {{ touch {marker}; echo flaky >&2; exit 1; }}; echo ok"
    wf = _one(
        {"argv": ["sh", "-c", script], "retry": {"max_attempts": 3, "initial_interval": "10ms"}}
    )

    block = engine.run(wf).block("cmd")

    assert (block.status, block.attempts, block.output["stdout"]) == ("completed", 2, "ok\n")


def test_stdout_tail_is_shown_when_stderr_is_empty(engine: flowforge.Engine) -> None:
    block = engine.run(_one({"argv": ["sh", "-c", "echo only stdout; exit 9"]})).block("cmd")

    assert block.error is not None
    assert block.error["message"] == (
        "command 'sh' exited with code 9; stdout ends with: only stdout"
    )


def test_a_missing_program_is_not_retried(engine: flowforge.Engine) -> None:
    wf = _one(
        {
            "argv": ["no-such-program-ff", "--help"],
            "retry": {"max_attempts": 3, "initial_interval": "10ms"},
        }
    )

    block = engine.run(wf).block("cmd")

    assert (block.status, block.attempts) == ("failed", 1)
    assert block.error is not None and block.error["type"] == "CommandNotFound"
    assert "'no-such-program-ff' not found" in block.error["message"]


def test_a_file_that_is_not_executable_is_not_retried(
    engine: flowforge.Engine, tmp_path: Path
) -> None:
    script = tmp_path / "script.sh"
    script.write_text("echo hi\n")
    script.chmod(0o644)
    wf = _one({"argv": [str(script)], "retry": {"max_attempts": 3, "initial_interval": "10ms"}})

    block = engine.run(wf).block("cmd")

    assert (block.status, block.attempts) == ("failed", 1)
    assert block.error is not None and block.error["type"] == "CommandNotExecutable"


def test_a_program_killed_by_a_signal_reports_the_signal(engine: flowforge.Engine) -> None:
    block = engine.run(_one({"argv": ["sh", "-c", "kill -9 $$"]})).block("cmd")

    assert block.error is not None
    assert block.error["type"] == "CommandFailed"
    assert "was killed by signal SIGKILL" in block.error["message"]


def test_invalid_fields_are_definition_errors() -> None:
    for fields, expected in [
        ({"argv": []}, "give at least the program to run"),
        ({"argv": ["echo"], "env": {"A=B": "x"}}, "not a valid environment variable name"),
        ({"argv": ["echo"], "max_output_bytes": 0}, "must be at least 1"),
        ({"argv": ["echo"], "shell": True}, "shell"),
    ]:
        with pytest.raises(flowforge.DefinitionError) as caught:
            _one(fields)
        assert expected in str(caught.value)


# -- output cap and log -------------------------------------------------------------------------


def test_output_beyond_the_cap_is_cut_with_a_marker_and_the_program_is_not_blocked(
    engine: flowforge.Engine,
) -> None:
    script = "import sys; sys.stdout.write('a' * 300000); sys.stderr.write('b' * 2000)"
    wf = _one({"argv": [PY, "-c", script], "max_output_bytes": 1000})

    result = engine.run(wf)

    output = result.block("cmd").output
    assert output["exit_code"] == 0
    assert output["stdout"] == "a" * 1000 + (
        "\n[flowforge: output truncated: 1000 of 300000 bytes kept]"
    )
    assert output["stderr"].startswith("b" * 1000 + "\n[flowforge: output truncated")


def test_the_default_cap_is_one_mebibyte_per_stream(engine: flowforge.Engine) -> None:
    script = "import sys; sys.stdout.write('a' * (3 << 20))"

    output = engine.run(_one({"argv": [PY, "-c", script]})).block("cmd").output

    assert output["stdout"].startswith("a" * (1 << 20) + "\n[flowforge: output truncated")
    assert f"{1 << 20} of {3 << 20} bytes kept" in output["stdout"]


def test_output_lines_go_to_the_block_log(engine: flowforge.Engine) -> None:
    script = (
        "import sys\n"
        "print('first out'); print('second out')\n"
        "print('a warning', file=sys.stderr)\n"
        "sys.stdout.write('no newline at the end')"
    )
    result = engine.run(_one({"argv": [PY, "-c", script]}))

    lines = [(line.level, line.message) for line in engine.logs(result.run_id, "cmd")]

    assert ("INFO", "first out") in lines
    assert ("INFO", "second out") in lines
    assert ("INFO", "no newline at the end") in lines
    assert ("WARNING", "a warning") in lines
    assert lines.index(("INFO", "first out")) < lines.index(("INFO", "second out"))
    assert ("INFO", f"{PY} exited with code 0") in lines


def test_the_log_keeps_only_the_captured_part(engine: flowforge.Engine) -> None:
    script = "for i in range(100): print(f'line {i}')"
    wf = _one(
        {"argv": [PY, "-c", script], "max_output_bytes": "{{ params.cap }}"},
        cap={"type": "integer"},
    )
    result = engine.run(wf, {"cap": 30})

    messages = [line.message for line in engine.logs(result.run_id, "cmd")]

    assert "line 0" in messages and "line 3" in messages
    assert "line 50" not in messages
    assert "[output beyond 30 bytes is not kept]" in messages


# -- timeouts and cancels: the whole process group ----------------------------------------------

SPAWNER = """
import os, signal, subprocess, sys, time
pids = sys.argv[1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(pids, "w") as f:
    f.write(f"{os.getpid()}\\n{child.pid}\\n")
if sys.argv[2] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
elif sys.argv[2] == "note-term":
    def on_term(signum, frame):
        open(pids + ".term", "w").write("SIGTERM")
        sys.exit(143)
    signal.signal(signal.SIGTERM, on_term)
time.sleep(60)
"""


def _spawner(pids: Path, mode: str, **extra: Any) -> flowforge.Workflow:
    return _one({"argv": [PY, "-c", SPAWNER, str(pids), mode], **extra})


def test_the_timeout_kills_the_command_and_the_processes_it_started(
    engine: flowforge.Engine, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    started = time.monotonic()

    block = engine.run(_spawner(pids, "ignore-term", timeout="1s")).block("cmd")

    assert time.monotonic() - started < 10
    assert block.status == "failed"
    assert block.error is not None and block.error["type"] == "Timeout"
    parent, child = _pids(pids)
    wait_until(lambda: not _alive(parent) and not _alive(child), 5, "the processes to be killed")


async def _running(engine: flowforge.Engine, wf: flowforge.Workflow, pids: Path) -> tuple[str, Any]:
    created: list[str] = []
    task = asyncio.create_task(engine.run_async(wf, on_created=created.append))
    await async_wait_until(lambda: len(_pids(pids)) == 2, 10, "the command to start its child")
    return created[0], task


async def test_cancel_sends_sigterm_to_the_process_group_and_the_run_ends_canceled(
    engine: flowforge.Engine, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    run_id, task = await _running(engine, _spawner(pids, "note-term"), pids)

    engine.cancel(run_id)
    result = await asyncio.wait_for(task, 8)  # well within the 10 s grace: SIGTERM ended it

    assert result.status == "canceled"
    assert result.block("cmd").status == "canceled"
    assert (tmp_path / "pids.term").read_text() == "SIGTERM"
    parent, child = _pids(pids)
    await async_wait_until(lambda: not _alive(parent) and not _alive(child), 5, "the group to end")


async def test_a_command_ignoring_sigterm_is_killed_at_the_end_of_the_cancel_grace(
    store_url: str, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    with flowforge.Engine(store_url, cancel_grace=0.5) as engine:
        run_id, task = await _running(engine, _spawner(pids, "ignore-term"), pids)
        canceled_at = time.monotonic()
        engine.cancel(run_id)
        result = await asyncio.wait_for(task, 8)

    assert result.status == "canceled"
    assert time.monotonic() - canceled_at >= 0.5
    parent, child = _pids(pids)
    await async_wait_until(lambda: not _alive(parent) and not _alive(child), 5, "the group to end")


async def test_terminate_kills_the_process_group_at_once(
    engine: flowforge.Engine, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    run_id, task = await _running(engine, _spawner(pids, "ignore-term"), pids)

    engine.terminate(run_id, "enough")
    result = await asyncio.wait_for(task, 5)

    assert result.status == "terminated"
    parent, child = _pids(pids)
    await async_wait_until(lambda: not _alive(parent) and not _alive(child), 5, "the group to end")


def test_processes_left_behind_by_a_finished_command_are_killed(
    engine: flowforge.Engine, tmp_path: Path
) -> None:
    pid_file = tmp_path / "background"
    script = f"sleep 60 > /dev/null 2>&1 & echo $! > {pid_file}; echo started"

    block = engine.run(_one({"argv": ["sh", "-c", script]})).block("cmd")

    assert block.output == {"exit_code": 0, "stdout": "started\n", "stderr": ""}
    (background,) = _pids(pid_file)
    wait_until(lambda: not _alive(background), 5, "the background process to be killed")


def test_a_slow_command_does_not_block_the_other_blocks(engine: flowforge.Engine) -> None:
    wf = _workflow(
        {"id": "slow", "type": "command", "argv": ["sleep", "0.6"]},
        {"id": "fast1", "type": "command", "argv": ["sleep", "0.6"]},
        {"id": "fast2", "type": "command", "argv": ["sleep", "0.6"]},
    )
    started = time.monotonic()

    result = engine.run(wf)

    assert result.status == "completed"
    assert time.monotonic() - started < 1.5  # the three ran at once


# -- the server policy --------------------------------------------------------------------------


async def _work_until_done(engine: flowforge.Engine, run_id: str) -> flowforge.RunResult:
    """Run ``run_id`` on a worker like ``flowforge worker`` (a server: ``Engine.work``)."""
    stop = asyncio.Event()
    worker = asyncio.create_task(engine.work(stop, drain_timeout=1))
    try:
        await async_wait_until(
            lambda: engine.get(run_id).status in ("completed", "failed"), 10, "the run to end"
        )
    finally:
        stop.set()
        await worker
    return engine.get(run_id)


async def test_a_shared_worker_refuses_commands_by_default(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FLOWFORGE_COMMAND_BLOCKS", raising=False)
    marker = tmp_path / "ran"
    wf = _one({"argv": ["touch", str(marker)], "retry": {"max_attempts": 3}})

    result = await _work_until_done(engine, engine.start(wf).run_id)

    block = result.block("cmd")
    assert (block.status, block.attempts) == ("failed", 1)
    assert block.error is not None and block.error["type"] == "CommandDisabled"
    assert "FLOWFORGE_COMMAND_BLOCKS=1" in block.error["message"]
    assert not marker.exists()


async def test_a_shared_worker_runs_commands_when_configured(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_COMMAND_BLOCKS", "1")

    result = await _work_until_done(engine, engine.start(_one({"argv": ["echo", "hi"]})).run_id)

    assert result.status == "completed"
    assert result.block("cmd").output["stdout"] == "hi\n"


def test_an_engine_with_the_server_policy_refuses_commands(store_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with flowforge.Engine(store_url, policy=flowforge.BlockPolicy.for_server({})) as engine:
        block = engine.run(_one({"argv": ["touch", str(marker)]})).block("cmd")

    assert block.error is not None and block.error["type"] == "CommandDisabled"
    assert not marker.exists()


def test_flowforge_command_blocks_0_disables_them_on_the_users_machine_too(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_COMMAND_BLOCKS", "0")

    block = engine.run(_one({"argv": ["true"]})).block("cmd")

    assert block.error is not None and block.error["type"] == "CommandDisabled"


def _context(policy: BlockPolicy) -> BlockContext:
    return BlockContext(
        run_id="run_x",
        workflow_id="w",
        block_id="cmd",
        attempt=1,
        idempotency_key="run_x:cmd",
        params={},
        logger=logging.getLogger("test.command"),
        resolve_function=lambda name: print,
        policy=policy,
    )


async def test_the_block_refuses_to_run_under_the_server_policy(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    block = CommandBlock.model_validate({"id": "cmd", "argv": ["touch", str(marker)]})

    with pytest.raises(NonRetryableError) as caught:
        await block.run(_context(BlockPolicy.for_server({})))
    assert caught.value.error_type == "CommandDisabled"
    assert not marker.exists()

    enabled = BlockPolicy.for_server({"FLOWFORGE_COMMAND_BLOCKS": "1"})
    assert (await block.run(_context(enabled)))["exit_code"] == 0
    assert marker.exists()
