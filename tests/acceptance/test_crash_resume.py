"""Durability (SPEC 3) from the outside: ``flowforge run`` killed with SIGKILL at random
instants, then ``flowforge resume RUN_ID``: the run completes with the right outputs, and a
block whose completion was committed before the kill never runs again.

One test, many kills: each round starts a run of a chain plus a fan-out of ``python`` blocks
that append their id to a side-effect file and then sleep 0-50 ms, kills the process after a
random delay counted from the moment it announced its run id, reads which blocks the store
holds as completed, resumes, and checks the invariants. The seed is printed (and can be set
with FLOWFORGE_CRASH_SEED) so that a failing sequence of instants can be replayed.
"""

from __future__ import annotations

import itertools
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
import sqlalchemy as sa
from cli_runner import Cli

ROUNDS = 20
CHAIN = ["a", "b", "c", "d", "e"]
FAN = [f"f{i}" for i in range(1, 9)]
BLOCKS = [*CHAIN, *FAN, "join", "last"]
RUN_ID = re.compile(r"\b(run_[0-9a-f]{32})\b")

SIDE_EFFECTS = """
    import os
    import random
    import time

    def step(name, value=0, values=()):
        with open(os.environ["CRASH_SIDE_EFFECTS"], "a") as log:
            log.write(name + "\\n")
        time.sleep(random.uniform(0, 0.05))
        return value + sum(values) + 1
"""


def _workflow() -> str:
    lines = ["id: crashy", "blocks:"]

    def block(block_id: str, args: str) -> None:
        lines.extend(
            [
                f"  - id: {block_id}",
                "    type: python",
                "    function: crashfx:step",
                f"    args: {{name: {block_id}{args}}}",
            ]
        )

    block("a", "")
    for before, block_id in itertools.pairwise(CHAIN):
        block(block_id, f', value: "{{{{ blocks.{before}.output }}}}"')
    for block_id in FAN:
        block(block_id, ', value: "{{ blocks.e.output }}"')
    fan = ", ".join(f"blocks.{b}.output" for b in FAN)
    block("join", f', values: "{{{{ [{fan}] }}}}"')
    block("last", ', value: "{{ blocks.join.output }}"')
    lines += ["outputs:", '  result: "{{ blocks.last.output }}"']
    return "\n".join(lines) + "\n"


# a..e give 1..5; each f gives 6; join gives 8 * 6 + 1; last gives join + 1
EXPECTED = {"result": 8 * 6 + 1 + 1}


def _read_run_id(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stderr is not None
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        found = RUN_ID.search(line)
        if found:
            return found.group(1)
    process.kill()
    raise AssertionError(f"no run id announced; stderr so far:\n{''.join(seen)}")


def _committed(engine: sa.Engine, run_id: str) -> tuple[set[str], Counter[str]]:
    """Blocks whose completion the store holds, and completed attempts per block."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "SELECT block_id FROM block_runs WHERE run_id = :r AND status = 'completed'"
                ),
                {"r": run_id},
            )
            .scalars()
            .all()
        )
    return set(rows), Counter(rows)


def _completed_events(engine: sa.Engine, run_id: str) -> Counter[str]:
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "SELECT block_id FROM events WHERE run_id = :r AND type = 'block.completed'"
                ),
                {"r": run_id},
            )
            .scalars()
            .all()
        )
    return Counter(rows)


def _crash_rounds(cli: Cli, database_url: str) -> None:
    from flowforge.store.connection import create_engine

    seed = int(os.environ.get("FLOWFORGE_CRASH_SEED", random.SystemRandom().randrange(10**6)))
    print(f"crash test seed: {seed} (replay with FLOWFORGE_CRASH_SEED={seed})")
    rng = random.Random(seed)
    cli.module("crashfx", SIDE_EFFECTS)
    path = cli.write("crashy.yaml", _workflow())
    engine = create_engine(database_url)
    kills_mid_run = 0
    completed_at_kill: list[int] = []
    try:
        for round_no in range(ROUNDS):
            effects = cli.dir / f"effects-{round_no}.txt"
            effects.touch()
            env = {**cli.env, "CRASH_SIDE_EFFECTS": str(effects)}
            delay = rng.uniform(0.0, 0.3)
            context = f"round {round_no} (seed {seed}, kill after {delay * 1000:.0f} ms)"

            process = subprocess.Popen(
                cli.command("run", path),
                env=env,
                cwd=cli.dir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                run_id = _read_run_id(process, time.monotonic() + 30)
                time.sleep(delay)
                if process.poll() is None:
                    kills_mid_run += 1
                process.send_signal(signal.SIGKILL)  # a no-op once the process has ended
                process.wait(timeout=30)
            finally:
                assert process.stderr is not None
                process.stderr.close()

            before, _ = _committed(engine, run_id)
            completed_at_kill.append(len(before))
            ran_before = Counter(effects.read_text().split())

            resumed = subprocess.run(
                cli.command("resume", run_id, "--json"),
                env=env,
                cwd=cli.dir,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert resumed.returncode == 0, f"{context}: {resumed.stderr}"
            record = json.loads(resumed.stdout)
            assert record["status"] == "completed", f"{context}: {record}"
            assert record["outputs"] == EXPECTED, context
            assert {b["block_id"]: b["status"] for b in record["blocks"]} == {
                b: "completed" for b in BLOCKS
            }, context

            ran = Counter(effects.read_text().split())
            after, completed_attempts = _committed(engine, run_id)
            assert after == set(BLOCKS), context
            for block_id in before:
                assert ran[block_id] == 1, (
                    f"{context}: {block_id} was completed before the kill but ran "
                    f"{ran[block_id]} times"
                )
            for block_id in BLOCKS:
                assert 1 <= ran[block_id] <= 2, f"{context}: {block_id} ran {ran[block_id]} times"
                assert ran[block_id] == ran_before[block_id] + (block_id not in before), (
                    f"{context}: {block_id} ran {ran_before[block_id]} time(s) before the kill, "
                    f"{ran[block_id]} in all, completed before the kill: {block_id in before}"
                )
            assert max(completed_attempts.values()) == 1, f"{context}: {completed_attempts}"
            assert max(_completed_events(engine, run_id).values()) == 1, context
    finally:
        engine.dispose()
    print(
        f"{kills_mid_run} of {ROUNDS} kills landed while the run was going; blocks completed "
        f"at each kill: {completed_at_kill}"
    )
    assert kills_mid_run >= ROUNDS // 2, "the kills should mostly land mid-run"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_run_killed_at_random_instants_resumes_and_never_reruns_a_completed_block(
    tmp_path: Path,
    store_url: str,
) -> None:
    _crash_rounds(Cli(tmp_path, store_url), store_url)


INTERRUPTED_MODULE = """
import time
from pathlib import Path

def slow(marker):
    Path(marker).write_text("running")
    time.sleep(60)
    return "never"

def quick(marker):
    return "done"
"""


def test_ctrl_c_hands_the_run_back_and_resume_takes_it_over_at_once(tmp_path: Path) -> None:
    """An interrupted `flowforge run` releases its leases: no wait for them to expire."""
    cli = Cli(tmp_path)
    cli.module("interrupted", INTERRUPTED_MODULE)
    marker = tmp_path / "marker"
    workflow = cli.write(
        "interrupted.yaml",
        f"""
        id: interrupted
        blocks:
          - id: first
            type: python
            function: interrupted:slow
            args: {{marker: "{marker}"}}
        """,
    )
    child = subprocess.Popen(
        cli.command("run", workflow),
        env=cli.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline and child.poll() is None, "the block never started"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    [run] = cli("runs", "list", "--json").json()
    # the module now returns at once: the resumed attempt completes
    cli.module("interrupted", INTERRUPTED_MODULE.replace("time.sleep(60)", "pass"))
    started = time.monotonic()
    resumed = cli("resume", run["run_id"], "--json", timeout=60)
    took = time.monotonic() - started
    assert resumed.returncode == 0, resumed
    assert resumed.json()["outputs"] == {"first": "never"}
    assert took < 10, f"resume waited {took:.1f}s: the interrupted run's lease was not released"
