"""Durability of iterations (issue 3): ``flowforge run`` killed in the middle of a ``for_each``
and a ``loop``, then ``flowforge resume``: iterations that completed before the kill never run
again, the rest run (at least once), and the outputs are right.

Each round kills the run after a random delay counted from its announcement; the seed is
printed and can be set with FLOWFORGE_CRASH_SEED.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from cli_runner import Cli

ROUNDS = 4
ITEMS = 30
LOOPS = 8
RUN_ID = re.compile(r"\b(run_[0-9a-f]{32})\b")

SIDE_EFFECTS = """
    import os
    import time

    def step(name, value):
        with open(os.environ["CRASH_SIDE_EFFECTS"], "a") as log:
            log.write(name + "\\n")
        time.sleep(0.04)
        return value * 2
"""

WORKFLOW = f"""
id: iterations
blocks:
  - id: each
    type: for_each
    items: "{{{{ range({ITEMS}) | list }}}}"
    concurrency: 2
    do:
      type: python
      function: iterfx:step
      args: {{name: "each-{{{{ item }}}}", value: "{{{{ item }}}}"}}
  - id: again
    type: loop
    max_iterations: {LOOPS + 5}
    until: "iteration >= {LOOPS - 1}"
    do:
      - id: work
        type: python
        function: iterfx:step
        args: {{name: "again-{{{{ iteration }}}}", value: "{{{{ iteration }}}}"}}
outputs:
  total: "{{{{ blocks.each.output | sum }}}}"
  loops: "{{{{ blocks.again.output | map(attribute='work') | list }}}}"
"""
EXPECTED = {"total": 2 * sum(range(ITEMS)), "loops": [2 * i for i in range(LOOPS)]}


def _instance_name(block_id: str) -> str:
    """``each[3]`` -> ``each-3``; ``again[2].work`` -> ``again-2``."""
    found = re.match(r"(\w+)\[(\d+)\]", block_id)
    assert found is not None, block_id
    return f"{found.group(1)}-{found.group(2)}"


def _completed_instances(cli: Cli, run_id: str) -> Counter[str]:
    result = cli("runs", "events", run_id, "--json")
    assert result.returncode == 0, result
    events = result.json()
    return Counter(
        _instance_name(e["block_id"])
        for e in events
        if e["type"] == "block.completed" and "[" in (e["block_id"] or "")
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_run_killed_mid_iteration_resumes_where_it_stopped(
    tmp_path: Path, store_url: str
) -> None:
    cli = Cli(tmp_path, store_url)
    cli.module("iterfx", SIDE_EFFECTS)
    path = cli.write("iterations.yaml", WORKFLOW)
    seed = int(os.environ.get("FLOWFORGE_CRASH_SEED", random.SystemRandom().randrange(10**6)))
    print(f"seed {seed}")
    rng = random.Random(seed)
    mid_run = 0
    for round_no in range(ROUNDS):
        effects = tmp_path / f"effects-{round_no}.txt"
        effects.touch()
        env = {**cli.env, "CRASH_SIDE_EFFECTS": str(effects)}
        delay = rng.uniform(0.1, 0.5)
        context = f"round {round_no} (seed {seed}, kill after {delay * 1000:.0f} ms)"
        process = subprocess.Popen(
            cli.command("run", path),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        run_id = None
        deadline = time.monotonic() + 30
        while run_id is None and time.monotonic() < deadline:
            found = RUN_ID.search(process.stderr.readline())
            run_id = found.group(1) if found else None
        assert run_id is not None, f"{context}: no run id"
        time.sleep(delay)
        if process.poll() is None:
            mid_run += 1
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()

        before = _completed_instances(cli, run_id)
        resumed = subprocess.run(
            cli.command("resume", run_id, "--json"),
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode == 0, f"{context}: {resumed.stderr}"
        record = json.loads(resumed.stdout)
        assert (record["status"], record["outputs"]) == ("completed", EXPECTED), context

        ran = Counter(effects.read_text().split())
        after = _completed_instances(cli, run_id)
        names = [f"each-{i}" for i in range(ITEMS)] + [f"again-{i}" for i in range(LOOPS)]
        assert set(after) == set(names), context
        assert max(after.values()) == 1, f"{context}: an iteration completed twice: {after}"
        for name in names:
            assert 1 <= ran[name] <= 2, f"{context}: {name} ran {ran[name]} times"
            if name in before:
                assert ran[name] == 1, f"{context}: {name} completed before the kill, ran again"
    assert mid_run >= ROUNDS // 2, "the kills should mostly land mid-run"
