"""What happens next in a run: pure decisions over its in-memory state.

The planner reads and updates a ``RunState`` and returns the commands to persist. It does no
I/O and reads no clock: the caller passes ``now``. The same outcomes on the same state give
the same commands, so it is tested without a database.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from flowforge.definition.compiled import CompiledBlock, CompiledWorkflow
from flowforge.engine import commands as cmd
from flowforge.engine import outcomes as out
from flowforge.engine.control import ControlFlow
from flowforge.engine.frames import Frame, locate
from flowforge.engine.retry import decide_retry
from flowforge.engine.rules import HANDLER_RULES, Decision, decide
from flowforge.engine.run_state import BlockState, RunState, count_dependency
from flowforge.engine.states import ACTIVE_BLOCK_STATUSES, BlockStatus, RunStatus
from flowforge.errors import FlowforgeError

ScopeFactory = Callable[[Frame | None], Mapping[str, Any]]


class Planner(ControlFlow):
    """Applies outcomes to one run's state and collects the commands they lead to.

    Control-flow blocks (iterations, switch, signals, child runs) are in ``ControlFlow``."""

    def __init__(
        self, workflow: CompiledWorkflow, state: RunState, now: datetime, scope: ScopeFactory
    ) -> None:
        self.workflow = workflow
        self.state = state
        self.now = now
        self._scope = scope
        self.commands: list[cmd.Command] = []
        self._newly_final: deque[str] = deque()
        self._stopping_as: str | None = None

    # -- entry points ---------------------------------------------------------------------
    def start(self) -> list[cmd.Command]:
        """Start a queued run: its root blocks become ready."""
        self.state.status = RunStatus.RUNNING
        self.state.started_at = self.now
        self.commands.append(cmd.StartRun())
        self.recompute()
        return self.commands

    def recompute(self) -> None:
        """Rebuild the derived counts and decide every pending block (after a reload or retry).

        A queued run is only counted: nothing is decided before it starts."""
        state = self.state
        state.ready.clear()
        state.ready_control.clear()
        state.running = 0
        for block_state in state.blocks.values():
            block_state.deps_final = block_state.deps_success = block_state.deps_failed = 0
            block_state.decided = block_state.status != BlockStatus.PENDING or block_state.queued
            if block_state.holds_slot:
                state.running += 1
        for block in self.workflow.blocks.values():
            bs = state.blocks[block.id]
            if bs.is_final:
                for dependent in block.dependents:
                    _count(state.blocks[dependent], bs)
        self._recount_frames()
        if state.status == RunStatus.QUEUED or state.is_terminal:
            return
        for block_id in list(state.blocks):
            self._consider(block_id)
        for block_id, bs in list(state.blocks.items()):
            if bs.progress is not None and bs.status == BlockStatus.RUNNING:
                self._advance(block_id)
        self._settle()

    def apply(self, outcomes: Iterable[out.Outcome]) -> list[cmd.Command]:
        """Apply attempt outcomes; stale ones (not the block's current attempt) are ignored."""
        for outcome in outcomes:
            if self.state.is_terminal:
                break
            if isinstance(outcome, out.DeadlineReached):
                self.stop(RunStatus.TIMED_OUT, "the run exceeded its timeout")
                continue
            bs = self.state.blocks.get(outcome.block_id)
            if bs is None or bs.attempt != outcome.attempt or bs.is_final:
                continue
            self._apply_block_outcome(outcome, bs)
            self._drain()
        self._settle()
        return self.commands

    def stop(self, status: RunStatus, reason: str | None) -> list[cmd.Command]:
        """End the run now: cancel, terminate or time out. Active blocks are canceled."""
        self._stopping_as = "cancel" if status == RunStatus.CANCELED else "terminate"
        for block_id, bs in self.state.blocks.items():
            if bs.status in ACTIVE_BLOCK_STATUSES or bs.queued:
                self._cancel(block_id, bs)
        self.state.ready.clear()
        self._drain()
        self._finish(status, reason)
        return self.commands

    def _settle(self) -> None:
        self._drain()
        while self.state.ready_control and self.state.status == RunStatus.RUNNING:
            self._start_control(self.state.ready_control.popleft())
            self._drain()
        self._fill_slots()
        self._maybe_finish()

    # -- outcomes -------------------------------------------------------------------------
    def _apply_block_outcome(self, outcome: out.BlockOutcome, bs: BlockState) -> None:
        block_id = outcome.block_id
        block, _ = locate(self.workflow, self.state, block_id)
        if isinstance(outcome, out.TimerFired) and block.kind == "wait_for_signal":
            self._signal_timed_out(block_id, block, bs)
            return
        if isinstance(outcome, out.ChildFinished):
            self._child_finished(block, bs, outcome)
            return
        if isinstance(outcome, out.Succeeded | out.TimerFired):
            output = outcome.output if isinstance(outcome, out.Succeeded) else None
            self._release_slot(bs)
            bs.status, bs.output, bs.error, bs.finished_at = (
                BlockStatus.COMPLETED,
                output,
                None,
                self.now,
            )
            notes = outcome.annotations if isinstance(outcome, out.Succeeded) else None
            bs.annotations = notes
            self.commands.append(cmd.CompleteBlock(block_id, bs.attempt, output, None, notes))
            self._final(block_id, bs)
        elif isinstance(outcome, out.Errored):
            self._release_slot(bs)
            self._errored(block, bs, outcome)
        elif isinstance(outcome, out.Suspended):
            self._release_slot(bs)
            bs.status = BlockStatus.WAITING
            self.commands.append(
                cmd.SuspendBlock(block_id, bs.attempt, outcome.delay, outcome.due_at)
            )
        elif isinstance(outcome, out.WorkerLost):
            # at-least-once: the attempt runs again, without using up the retry budget
            self._release_slot(bs)
            bs.status = BlockStatus.RETRYING
            bs.attempt += 1
            error = {"type": "WorkerLost", "message": "the worker running the block stopped"}
            self.commands.append(
                cmd.ScheduleRetry(block_id, bs.attempt - 1, error, bs.attempt, 0.0, lost=True)
            )

    def _errored(self, block: CompiledBlock, bs: BlockState, outcome: out.Errored) -> None:
        block_id = outcome.block_id
        bs.failures += 1
        error = outcome.as_error()
        decision = None
        if not block.control:  # control-flow blocks are not retried (their bodies are)
            decision = decide_retry(
                block.retry,
                bs.failures,
                outcome.error_type,
                retryable=outcome.retryable,
                requested_delay=outcome.retry_delay,
            )
        if decision is not None and not self.state.failing_fast:
            bs.status, bs.error = BlockStatus.RETRYING, error
            bs.attempt += 1
            self.commands.append(
                cmd.ScheduleRetry(
                    block_id,
                    bs.attempt - 1,
                    error,
                    bs.attempt,
                    decision.delay,
                    annotations=outcome.annotations,
                )
            )
            return
        self._fail(block_id, block, bs, error, outcome.annotations)

    def _fail(
        self,
        block_id: str,
        block: CompiledBlock,
        bs: BlockState,
        error: dict[str, Any],
        notes: dict[str, Any] | None = None,
    ) -> None:
        """The block failed for good: the run fails unless it is tolerated or in a body (then
        its iteration fails, and its container decides)."""
        tolerated = block.spec.continue_on_failure
        bs.status, bs.error, bs.output, bs.tolerated = BlockStatus.FAILED, error, None, tolerated
        bs.finished_at = self.now
        self.commands.append(cmd.FailBlock(block_id, bs.attempt, error, tolerated, notes))
        if not tolerated and block_id not in self.state.nodes:
            if self.state.failure_reason is None:
                self.state.failure_reason = failure_reason(block_id, error)
            if self.workflow.spec.settings.fail_fast:
                self._fail_fast()
        self._final(block_id, bs)

    def _fail_fast(self) -> None:
        """Cancel what runs and skip what waits, except handlers a failure can satisfy."""
        if self.state.failing_fast:
            return
        self.state.failing_fast = True
        for block_id, bs in self.state.blocks.items():
            if bs.status in ACTIVE_BLOCK_STATUSES or bs.queued:
                self._cancel(block_id, bs)
                self._final(block_id, bs)
        for ready in (self.state.ready, self.state.ready_control):
            for block_id in list(ready):
                block, _ = locate(self.workflow, self.state, block_id)
                if block.spec.trigger_rule not in HANDLER_RULES:
                    ready.remove(block_id)
                    self._skip(block_id, "the run is failing fast")

    # -- readiness ------------------------------------------------------------------------
    def _final(self, block_id: str, bs: BlockState) -> None:
        """A block reached a final status: its dependents may now be decided."""
        self._newly_final.append(block_id)

    def _drain(self) -> None:
        # a worklist, not recursion: a skip can cascade down a chain of any length
        states = self.state.blocks
        while self._newly_final:
            block_id = self._newly_final.popleft()
            bs = states[block_id]
            block, frame = locate(self.workflow, self.state, block_id)
            if frame is None:
                for dependent in block.dependents:
                    _count(states[dependent], bs)
                    self._consider(dependent)
                continue
            for dependent in block.dependents:
                instance = frame.ids[dependent]
                _count(states[instance], bs)
                self._consider(instance)
            frame.open -= 1
            if frame.open == 0:
                self._iteration_ended(frame)

    def _consider(self, block_id: str) -> None:
        bs = self.state.blocks[block_id]
        if bs.decided or bs.status != BlockStatus.PENDING:
            return
        block, frame = locate(self.workflow, self.state, block_id)
        rule = block.spec.trigger_rule
        if self.state.failing_fast and rule not in HANDLER_RULES:
            self._skip(block_id, "the run is failing fast")
            return
        decision = decide(
            rule, len(block.dependencies), bs.deps_final, bs.deps_success, bs.deps_failed
        )
        if decision is Decision.WAIT:
            return
        if decision is Decision.SKIP:
            self._skip(block_id, f"trigger rule {rule} not met")
            return
        if block.guards and not self._chosen(block, frame, block_id):
            return
        if block.condition is not None and not self._condition_holds(block, bs, block_id, frame):
            return
        bs.decided = True
        (self.state.ready_control if block.control else self.state.ready).append(block_id)

    def _condition_holds(
        self, block: CompiledBlock, bs: BlockState, block_id: str, frame: Frame | None
    ) -> bool:
        assert block.condition is not None
        try:
            value = block.condition.render(self._scope(frame))
        except FlowforgeError as exc:
            bs.decided = True
            bs.attempt += 1
            bs.failures += 1
            self._fail(
                block_id,
                block,
                bs,
                {"type": "TemplateError", "message": f"'if' of block: {exc}"},
            )
            return False
        if not value:
            self._skip(block_id, "its 'if' condition is false")
            return False
        return True

    def _fill_slots(self) -> None:
        state = self.state
        if state.status != RunStatus.RUNNING:
            return
        limit = self.workflow.spec.settings.max_concurrency
        while state.ready and (limit is None or state.running < limit):
            block_id = state.ready.popleft()
            bs = state.blocks[block_id]
            bs.attempt += 1
            self._ready(block_id, bs)

    def _ready(self, block_id: str, bs: BlockState) -> None:
        bs.queued = True
        self.state.running += 1
        self.commands.append(cmd.ReadyBlock(block_id, bs.attempt))

    def _release_slot(self, bs: BlockState) -> None:
        if bs.holds_slot:
            self.state.running -= 1
        bs.queued = False

    def _skip(self, block_id: str, reason: str) -> None:
        bs = self.state.blocks[block_id]
        bs.decided = True
        bs.status, bs.finished_at, bs.output = BlockStatus.SKIPPED, self.now, None
        self.commands.append(cmd.SkipBlock(block_id, reason))
        self._final(block_id, bs)

    def _cancel(self, block_id: str, bs: BlockState) -> None:
        self._release_slot(bs)
        bs.status, bs.finished_at = BlockStatus.CANCELED, self.now
        self.commands.append(cmd.CancelBlock(block_id, bs.attempt))
        if bs.child_run_id is not None:
            self.commands.append(cmd.CancelChild(bs.child_run_id, self._child_stop_status()))

    # -- the end --------------------------------------------------------------------------
    def _maybe_finish(self) -> None:
        state = self.state
        if state.is_terminal or state.status != RunStatus.RUNNING:
            return
        if state.running or state.ready or state.ready_control:
            return
        if any(not bs.is_final for bs in state.blocks.values()):
            return
        if state.failure_reason is not None:
            self._finish(RunStatus.FAILED, state.failure_reason)
        else:
            self._finish(RunStatus.COMPLETED, None)

    def _finish(self, status: RunStatus, reason: str | None) -> None:
        state = self.state
        state.outputs = None
        if status == RunStatus.COMPLETED:
            state.outputs, reason = self._outputs()
            if reason is not None:
                status = RunStatus.FAILED
        state.status, state.finished_at, state.failure_reason = status, self.now, reason
        self.commands.append(cmd.FinishRun(status, state.outputs, reason))

    def _outputs(self) -> tuple[dict[str, Any] | None, str | None]:
        """The run's outputs, or None and the reason they could not be rendered."""
        outputs = self.workflow.outputs
        if outputs is None:
            leaves = self.workflow.leaves
            return {leaf: self.state.blocks[leaf].output for leaf in leaves}, None
        scope = self._scope(None)
        try:
            return {key: template.render(scope) for key, template in outputs.items()}, None
        except FlowforgeError as exc:
            return None, f"outputs could not be rendered: {exc}"


_count = count_dependency


def failure_reason(block_id: str, error: dict[str, Any]) -> str:
    """The run's ``failure_reason`` when block ``block_id`` failed with ``error``."""
    return f"block '{block_id}' failed: {error.get('type')}: {error.get('message')}"
