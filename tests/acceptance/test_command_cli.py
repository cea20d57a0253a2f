"""``command`` blocks through the real CLI: ``flowforge run`` (the user's own machine) runs
them; ``flowforge worker`` (a server) refuses them unless ``FLOWFORGE_COMMAND_BLOCKS=1``."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from cli_runner import Cli, wait_for

import flowforge

FLOW = """
# a command block and its output
id: shell-out
parameters:
  word: {type: string, default: hello}
blocks:
  - id: say
    type: command
    argv: [echo, "{{ params.word }}", world]
  - id: shout
    type: transform
    value: "{{ blocks.say.output.stdout | upper }}"
"""


def test_flowforge_run_runs_a_command_block(cli: Cli) -> None:
    path = cli.write("shell.yaml", FLOW)

    done = cli("run", path, "-p", "word=bonjour", "--json")

    assert done.returncode == 0, done
    record = done.json()
    assert record["status"] == "completed"
    assert record["outputs"] == {"shout": "BONJOUR WORLD\n"}
    say = next(b for b in record["blocks"] if b["block_id"] == "say")
    assert say["output"] == {"exit_code": 0, "stdout": "bonjour world\n", "stderr": ""}


def _run_on_a_worker(cli: Cli, path: Path, env: dict[str, str]) -> flowforge.RunResult:
    with flowforge.Engine(cli.database_url) as engine:
        run_id = engine.start(flowforge.load(path)).run_id
        worker = subprocess.Popen(
            cli.command("worker", "--concurrency", "2"),
            env={**cli.env, **env},
            cwd=cli.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                lambda: engine.get(run_id).status in ("completed", "failed"), 30, "the run to end"
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        return engine.get(run_id)


@pytest.mark.slow
def test_flowforge_worker_refuses_command_blocks_unless_configured(
    tmp_path: Path, store_url: str
) -> None:
    cli = Cli(tmp_path, database_url=store_url)
    path = cli.write("shell.yaml", FLOW)

    refused = _run_on_a_worker(cli, path, {})

    assert refused.status == "failed"
    error = refused.block("say").error
    assert error is not None and error["type"] == "CommandDisabled"
    assert "FLOWFORGE_COMMAND_BLOCKS=1" in error["message"]
    assert refused.block("shout").status == "skipped"

    allowed = _run_on_a_worker(cli, path, {"FLOWFORGE_COMMAND_BLOCKS": "1"})

    assert allowed.status == "completed"
    assert allowed.outputs == {"shout": "HELLO WORLD\n"}
