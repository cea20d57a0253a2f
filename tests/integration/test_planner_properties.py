"""Property tests of the pure planner: random DAGs, random completion orders (DESIGN 4).

The simulation plays the worker: every ``ReadyBlock`` starts at once, and one running block at
a time (chosen by Hypothesis) finishes. Each step uses a new ``Planner`` over the same state, as
each transaction does; now and then the state is re-planned from scratch (``recompute``), as
after a reload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowforge.definition.compiled import CompiledWorkflow
from flowforge.definition.workflow import Workflow
from flowforge.engine import commands as cmd
from flowforge.engine import outcomes as out
from flowforge.engine.planner import Planner
from flowforge.engine.records import RunRecord
from flowforge.engine.replay import new_state
from flowforge.engine.run_state import RunState
from flowforge.engine.scope import build_scope
from flowforge.engine.states import BlockStatus

NOW = datetime(2030, 1, 1, tzinfo=UTC)
EARLY_RULES = {"one_success", "one_failed"}
"""Rules that may fire before every dependency is final."""


@st.composite
def dags(draw: st.DrawFn, rules: bool = False) -> dict[str, Any]:
    """A workflow definition: blocks b0..bn, each depending on earlier ones, listed shuffled."""
    count = draw(st.integers(1, 10))
    blocks = []
    for index in range(count):
        earlier = [f"b{j}" for j in range(index)]
        block: dict[str, Any] = {
            "id": f"b{index}",
            "type": "noop",
            "depends_on": draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3))
            if earlier
            else [],
        }
        if rules:
            block["trigger_rule"] = draw(
                st.sampled_from(
                    [
                        "all_success",
                        "all_done",
                        "none_failed",
                        "one_success",
                        "one_failed",
                        "all_failed",
                    ]
                )
            )
        blocks.append(block)
    order = draw(st.permutations(blocks))
    concurrency = draw(st.none() | st.integers(1, 3))
    return {"id": "prop", "settings": {"max_concurrency": concurrency}, "blocks": list(order)}


def _compile(definition: dict[str, Any]) -> tuple[CompiledWorkflow, RunState]:
    workflow = Workflow.from_dict(definition).compile()
    record = RunRecord(
        run_id="run_prop",
        workflow_id="prop",
        workflow_version=1,
        status="queued",
        parameters={},
        outputs=None,
        failure_reason=None,
        idempotency_key=None,
        created_at=NOW,
        started_at=None,
        finished_at=None,
    )
    return workflow, new_state(workflow, record)


@dataclass
class Simulation:
    workflow: CompiledWorkflow
    state: RunState
    running: set[str] = field(default_factory=set)
    finals: dict[str, list[str]] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    finished: cmd.FinishRun | None = None
    trace: list[cmd.Command] = field(default_factory=list)

    def planner(self) -> Planner:
        return Planner(self.workflow, self.state, NOW, lambda: build_scope(self.state, {}, {}))

    def play(self, commands: list[cmd.Command]) -> None:
        for command in commands:
            self.trace.append(command)
            if isinstance(command, cmd.ReadyBlock):
                self._start(command.block_id)
            elif isinstance(command, cmd.CompleteBlock | cmd.FailBlock | cmd.SkipBlock):
                status = {
                    cmd.CompleteBlock: "completed",
                    cmd.FailBlock: "failed",
                    cmd.SkipBlock: "skipped",
                }[type(command)]
                self.finals.setdefault(command.block_id, []).append(status)
            elif isinstance(command, cmd.FinishRun):
                assert self.finished is None, "the run finished twice"
                self.finished = command
        commands.clear()

    def _start(self, block_id: str) -> None:
        block = self.workflow.blocks[block_id]
        assert block_id not in self.started, f"{block_id} made ready twice"
        outcomes = [self.finals.get(dep, [None])[-1] for dep in block.dependencies]
        rule = block.spec.trigger_rule
        if not outcomes:
            pass  # a block without dependencies starts with the run, whatever its rule
        elif rule == "one_success":
            assert "completed" in outcomes, f"{block_id} ({rule}) ready too early"
        elif rule == "one_failed":
            assert "failed" in outcomes, f"{block_id} ({rule}) ready too early"
        else:
            assert None not in outcomes, f"{block_id} ready before its dependencies are final"
        limit = self.workflow.spec.settings.max_concurrency
        assert limit is None or len(self.running) < limit, "max_concurrency exceeded"
        self.started.append(block_id)
        self.running.add(block_id)
        bs = self.state.blocks[block_id]
        bs.status, bs.queued = BlockStatus.RUNNING, False  # what the journal's start_attempt does


def _run(definition: dict[str, Any], data: st.DataObject, failing: set[str]) -> Simulation:
    workflow, state = _compile(definition)
    sim = Simulation(workflow, state)
    sim.play(sim.planner().start())
    while sim.finished is None:
        assert sim.running, f"stuck: nothing runs and the run did not finish ({sim.finals})"
        block_id = data.draw(st.sampled_from(sorted(sim.running)), label="finishes")
        sim.running.remove(block_id)
        attempt = state.blocks[block_id].attempt
        outcome: out.Outcome = (
            out.Errored(block_id, attempt, "Boom", "boom", retryable=False)
            if block_id in failing
            else out.Succeeded(block_id, attempt, block_id)
        )
        planner = sim.planner()
        sim.play(planner.apply([outcome]))
        if data.draw(st.booleans(), label="reload"):
            planner = sim.planner()
            planner.recompute()
            sim.play(planner.commands)
    return sim


@settings(max_examples=200, deadline=None)
@given(definition=dags(), data=st.data())
def test_every_block_completes_once_after_its_dependencies_and_the_run_completes(
    definition: dict[str, Any], data: st.DataObject
) -> None:
    sim = _run(definition, data, failing=set())

    assert sim.finished is not None and sim.finished.status == "completed"
    assert sim.finals == {block_id: ["completed"] for block_id in sim.workflow.blocks}
    assert sorted(sim.started) == sorted(sim.workflow.blocks)
    leaves = sim.workflow.leaves
    assert sim.finished.outputs == {leaf: leaf for leaf in leaves}


@settings(max_examples=200, deadline=None)
@given(definition=dags(rules=True), data=st.data())
def test_with_failures_and_any_trigger_rules_every_block_ends_once_and_the_run_ends(
    definition: dict[str, Any], data: st.DataObject
) -> None:
    ids = sorted(block["id"] for block in definition["blocks"])
    failing = set(data.draw(st.lists(st.sampled_from(ids), unique=True), label="failing"))
    sim = _run(definition, data, failing)

    assert sim.finished is not None
    assert set(sim.finals) == set(ids)
    assert all(len(statuses) == 1 for statuses in sim.finals.values())
    for block_id in sim.started:
        expected = "failed" if block_id in failing else "completed"
        assert sim.finals[block_id] == [expected]
    assert all(sim.finals[b] == ["skipped"] for b in ids if b not in sim.started)
    any_failed = any(statuses == ["failed"] for statuses in sim.finals.values())
    assert sim.finished.status == ("failed" if any_failed else "completed")


@settings(max_examples=50, deadline=None)
@given(definition=dags(rules=True), seed=st.randoms(use_true_random=False))
def test_planning_is_deterministic(definition: dict[str, Any], seed: Any) -> None:
    ids = sorted(block["id"] for block in definition["blocks"])
    failing = {b for b in ids if seed.random() < 0.3}
    choices = [seed.random() for _ in range(200)]

    def replay_once() -> list[cmd.Command]:
        workflow, state = _compile(definition)
        sim = Simulation(workflow, state)
        sim.play(sim.planner().start())
        step = 0
        while sim.finished is None:
            running = sorted(sim.running)
            block_id = running[int(choices[step % len(choices)] * len(running))]
            step += 1
            sim.running.remove(block_id)
            attempt = state.blocks[block_id].attempt
            outcome: out.Outcome = (
                out.Errored(block_id, attempt, "Boom", "boom", retryable=False)
                if block_id in failing
                else out.Succeeded(block_id, attempt, None)
            )
            sim.play(sim.planner().apply([outcome]))
        return sim.trace

    assert replay_once() == replay_once()
