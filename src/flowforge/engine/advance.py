"""Where a run's state changes: every transition goes through one of these functions.

Each function runs inside one store transaction: it makes sure the run's cached state is
current (the last event's sequence number), lets the planner decide, and writes the commands
through the journal. A concurrent writer of the same run makes the transaction fail on the
events' (run_id, seq) key; the caller forgets the cached state and tries again.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowforge.definition.compiled import CompiledWorkflow
from flowforge.definition.parameters import validate_parameters
from flowforge.engine import commands as cmd
from flowforge.engine import outcomes as out
from flowforge.engine.frames import Frame
from flowforge.engine.journal import Journal, Slots
from flowforge.engine.planner import Planner
from flowforge.engine.ports import Transaction
from flowforge.engine.records import ClaimedTask, Event, NewRun, RunUpdate, TaskKind
from flowforge.engine.replay import new_state, replay
from flowforge.engine.run_state import RunState
from flowforge.engine.scope import MaskedSecrets, build_scope
from flowforge.engine.signals import check_signal
from flowforge.engine.states import BlockStatus, RunStatus, can_move_run
from flowforge.errors import InvalidStateError, NotFoundError, ParameterError

WorkflowLoader = Callable[[str, int], CompiledWorkflow]


@dataclass
class Advanced:
    """What one transaction did, for the worker to act on once it is committed."""

    events: list[Event] = field(default_factory=list)
    claimed: list[ClaimedTask] = field(default_factory=list)
    canceled: list[tuple[str, str, bool]] = field(default_factory=list)
    run_ids: set[str] = field(default_factory=set)
    leases: set[str] = field(default_factory=set)
    """The runs this worker holds a lease on once the transaction is committed."""


class RunBook:
    """The runs this process knows, kept current by comparing event sequence numbers."""

    def __init__(self, load_workflow: WorkflowLoader) -> None:
        self._load_workflow = load_workflow
        self._states: dict[str, RunState] = {}
        self._workflows: dict[tuple[str, int], CompiledWorkflow] = {}

    def add_workflow(self, workflow_id: str, version: int, compiled: CompiledWorkflow) -> None:
        self._workflows[(workflow_id, version)] = compiled

    def workflow(self, workflow_id: str, version: int) -> CompiledWorkflow:
        key = (workflow_id, version)
        if key not in self._workflows:
            self._workflows[key] = self._load_workflow(workflow_id, version)
        return self._workflows[key]

    def cached(self, run_id: str) -> RunState | None:
        return self._states.get(run_id)

    def forget(self, run_ids: Sequence[str] | set[str]) -> None:
        for run_id in run_ids:
            self._states.pop(run_id, None)

    def remember(self, state: RunState) -> None:
        self._states[state.run_id] = state

    def load(self, txn: Transaction, run_id: str) -> tuple[CompiledWorkflow, RunState, bool]:
        """The run's state: the cached one, else rebuilt from the store.

        A cached state may be stale (another process moved the run on): then the events this
        transaction appends collide with the other writer's on (run_id, seq), the transaction
        fails with ``StaleWriteError``, and the caller forgets the state and tries again. So a
        stale state never gets written, and the hot path costs no read.

        The flag says the state was rebuilt (and must be re-planned)."""
        state = self._states.get(run_id)
        if state is not None:
            return self.workflow(state.workflow_id, state.workflow_version), state, False
        record = txn.get_run(run_id)
        if record is None:
            raise NotFoundError(f"run {run_id} does not exist")
        workflow = self.workflow(record.workflow_id, record.workflow_version)
        state = replay(workflow, record, txn.run_events(run_id), txn.run_tasks(run_id))
        self._states[run_id] = state
        return workflow, state, True


@dataclass
class Step:
    """The context of one transaction: its journal, its clock, and the run book."""

    txn: Transaction
    book: RunBook
    slots: Slots
    lease: float
    now: datetime = field(default_factory=lambda: _now())
    result: Advanced = field(default_factory=Advanced)
    touched: set[str] = field(default_factory=set)
    """Runs whose cached state this step may have changed."""

    def __post_init__(self) -> None:
        self.journal = Journal(self.txn, self.now, self.lease, self.slots)

    def planner(self, workflow: CompiledWorkflow, state: RunState) -> Planner:
        return Planner(workflow, state, self.now, _masked_scope(state))

    def fresh(self, run_id: str) -> tuple[CompiledWorkflow, RunState, Planner]:
        """The run's current state and a planner for it (re-planned if it was reloaded)."""
        self.touched.add(run_id)
        workflow, state, reloaded = self.book.load(self.txn, run_id)
        planner = self.planner(workflow, state)
        if reloaded:
            planner.recompute()
        return workflow, state, planner

    def commit(self, workflow: CompiledWorkflow, state: RunState, planner: Planner) -> None:
        commands = list(planner.commands)
        planner.commands.clear()
        self.journal.write(workflow, state, commands)
        self.result.run_ids.add(state.run_id)
        # what reaches other runs, in this same transaction: child runs start or stop, and a
        # finished child tells its parent
        for command in commands:
            if isinstance(command, cmd.StartChild):
                start_child(self, workflow, state, planner, command)
            elif isinstance(command, cmd.CancelChild):
                stop_child(self, command)
            elif isinstance(command, cmd.FinishRun) and state.parent_run_id is not None:
                notify_parent(self, state, command)

    def finish(self) -> Advanced:
        self.journal.flush()
        self.result.leases = self.slots.leases
        self.result.events = [*self.result.events, *self.journal.events]
        self.result.claimed = self.journal.claimed
        self.result.canceled = self.journal.canceled
        return self.result


def create_run(
    step: Step,
    run: NewRun,
    workflow: CompiledWorkflow,
    start_now: bool,
    parent: tuple[str, str] | None = None,
) -> RunState:
    """Insert a queued run; start it at once when this worker runs it (``flowforge run``).

    ``parent``: (run id, block id) of the ``workflow`` block whose child this run is."""
    step.txn.insert_run(run)
    step.book.add_workflow(run.workflow_id, run.workflow_version, workflow)
    record = step.txn.get_run(run.run_id)
    assert record is not None
    state = new_state(workflow, record)
    step.book.remember(state)
    step.touched.add(run.run_id)
    queued: dict[str, Any] = {"workflow_version": run.workflow_version}
    if parent is not None:
        state.parent_run_id, state.parent_block_id = parent
        queued["parent_run_id"], queued["parent_block_id"] = parent
    if workflow.source_dir is not None:
        state.source_dir = queued["source_dir"] = str(workflow.source_dir)
    step.journal.event(state, "run.queued", None, queued)
    if start_now:
        planner = step.planner(workflow, state)
        planner.start()
        step.commit(workflow, state, planner)
    else:
        from flowforge.engine.records import NewTask

        step.journal.tasks.append(NewTask(f"{run.run_id}:start", run.run_id, TaskKind.START))
    step.result.run_ids.add(run.run_id)
    return state


def apply_outcomes(step: Step, items: Sequence[tuple[ClaimedTask, out.Outcome]]) -> None:
    """Record what attempts produced, for the tasks this worker still holds."""
    by_run: dict[str, list[tuple[ClaimedTask, out.Outcome]]] = defaultdict(list)
    for task, outcome in items:
        by_run[task.run_id].append((task, outcome))
    for run_id, run_items in by_run.items():
        # blocks this worker dispatched to itself have no row: the run's event sequence fences
        # their completion (a stale worker's events collide with the newer writer's)
        rows = iter(step.txn.finish_tasks([task for task, _ in run_items if task.has_row]))
        held = [next(rows) if task.has_row else True for task, _ in run_items]
        outcomes = [outcome for (_, outcome), ok in zip(run_items, held, strict=True) if ok]
        if not outcomes:
            continue
        lines = [line for outcome in outcomes for line in getattr(outcome, "logs", ())]
        if lines:
            step.txn.write_logs(run_id, lines)  # what the attempts logged, with their ends
        workflow, state, planner = step.fresh(run_id)
        planner.apply(outcomes)
        step.commit(workflow, state, planner)


CONTROL_CLAIM_LIMIT = 16
"""Tasks a worker with no free slot claims at most in one go (leases, timers, deadlines)."""


def claim(step: Step, limit: int, run_id: str | None = None) -> None:
    """Claim due tasks and act on them: start attempts, fire timers, start runs.

    With no free slot (``limit`` 0) only tasks that run no block are claimed: a dead worker's
    lease is taken over, and a timer fires, however busy the worker is."""
    if limit > 0:
        tasks = step.txn.claim_tasks(limit, step.lease, run_id)
    else:
        tasks = step.txn.claim_tasks(CONTROL_CLAIM_LIMIT, step.lease, run_id, control_only=True)
    for task in tasks:
        try:
            workflow, state, planner = _fresh_for(step, task)
        except NotFoundError:
            # an orphan (its run or its workflow version was deleted): nothing to do with it
            step.txn.finish_tasks([task])
            continue
        if state.is_terminal:
            step.txn.finish_tasks([task])
            continue
        if task.kind == TaskKind.START:
            step.txn.finish_tasks([task])
            if state.status == RunStatus.QUEUED:
                planner.start()
        elif task.kind == TaskKind.DEADLINE:
            step.txn.finish_tasks([task])
            planner.apply([out.DeadlineReached()])
        elif task.kind == TaskKind.LEASE:
            _recover_lease(step, planner, state, task)
        elif task.kind == TaskKind.TIMER:
            step.txn.finish_tasks([task])
            planner.apply([out.TimerFired(task.block_id or "", task.attempt)])
        else:
            _claimed_block(step, planner, state, task)
        step.commit(workflow, state, planner)


def _fresh_for(step: Step, task: ClaimedTask) -> tuple[CompiledWorkflow, RunState, Planner]:
    """The run's state for a claimed task.

    A task the cached state cannot explain (its run ended, or its block is at another attempt)
    means another process moved the run on, e.g. retried it: the run is reloaded, so that the
    task is acted on rather than dropped as stale."""
    workflow, state, planner = step.fresh(task.run_id)
    if _explains(state, task):
        return workflow, state, planner
    # what this step already did to the run is written first, so that the reload sees it
    # (else it reuses sequence numbers this step has taken, and collides with itself)
    step.journal.flush()
    step.book.forget([task.run_id])
    return step.fresh(task.run_id)


def _explains(state: RunState, task: ClaimedTask) -> bool:
    if state.is_terminal:
        return False
    if task.kind == TaskKind.LEASE:
        return False  # recovering another worker's blocks: read what the store says now
    if task.kind not in (TaskKind.BLOCK, TaskKind.TIMER):
        return True
    bs = state.blocks.get(task.block_id or "")
    return bs is not None and bs.attempt == task.attempt


def refresh(step: Step, run_ids: Sequence[str]) -> None:
    """Reload runs another process changed (a cancel, a pause, a retry): their events since
    this process last wrote become this step's events, so observers and the worker see them."""
    for run_id in run_ids:
        known = step.book.cached(run_id)
        after = known.seq if known is not None else 0
        step.journal.flush()  # see _fresh_for
        step.book.forget([run_id])
        workflow, state, planner = step.fresh(run_id)
        step.result.events.extend(step.txn.run_events(run_id, after))
        step.commit(workflow, state, planner)


def _recover_lease(step: Step, planner: Planner, state: RunState, task: ClaimedTask) -> None:
    """A worker's lease on the run expired: the blocks it ran under it are lost, run again."""
    step.txn.finish_tasks([task])
    holder = task.task_id.rpartition(":lease:")[2]
    lost = [
        out.WorkerLost(block_id, bs.attempt)
        for block_id, bs in state.blocks.items()
        if bs.status == BlockStatus.RUNNING and bs.leased_by == holder
    ]
    planner.apply(lost)


def _claimed_block(step: Step, planner: Planner, state: RunState, task: ClaimedTask) -> None:
    bs = state.blocks.get(task.block_id or "")
    if bs is None or bs.attempt != task.attempt:
        step.txn.finish_tasks([task])
        return
    if bs.status == BlockStatus.RUNNING:
        # its worker died or lost its lease: the attempt is lost and runs again
        step.txn.finish_tasks([task])
        planner.apply([out.WorkerLost(task.block_id or "", task.attempt)])
        return
    if (
        bs.status not in (BlockStatus.PENDING, BlockStatus.RETRYING)
        or state.status != RunStatus.RUNNING
    ):
        # also when paused: holding the task would keep it from anyone until its lease ran
        # out; resume gives the block a new one (_requeue)
        step.txn.finish_tasks([task])
        return
    step.journal.start_attempt(state, task.block_id or "", task.attempt)
    step.journal.claimed.append(task)


def control(step: Step, run_id: str, action: str, reason: str | None = None) -> RunState:
    """cancel, terminate, pause, resume or retry a run (SPEC 3)."""
    workflow, state, planner = step.fresh(run_id)
    status = RunStatus(state.status)
    target = _ACTION_TARGET[action]
    if not can_move_run(status, target) or status not in _ACTION_FROM.get(action, status):
        raise InvalidStateError(f"cannot {action} run {run_id}: it is {status.value}")
    if action in ("cancel", "terminate"):
        if status == RunStatus.QUEUED:
            planner.state.status = RunStatus.RUNNING
        planner.stop(target, reason or f"{target.value} by request")
    elif action == "pause":
        state.status = RunStatus.PAUSED
        step.journal.event(state, "run.paused", None, {})
        step.txn.update_run(RunUpdate(run_id, RunStatus.PAUSED))
    elif action == "resume":
        orphans = _orphans(step, state)
        state.status = RunStatus.RUNNING
        step.journal.event(state, "run.resumed", None, {})
        step.txn.update_run(RunUpdate(run_id, RunStatus.RUNNING))
        planner.recompute()
        planner.commands.extend(cmd.ReadyBlock(b, state.blocks[b].attempt) for b in orphans)
    else:
        _retry(step, workflow, state, planner)
    step.commit(workflow, state, planner)
    return state


def start_child(
    step: Step,
    workflow: CompiledWorkflow,
    state: RunState,
    planner: Planner,
    command: cmd.StartChild,
) -> None:
    """Create and start the child run of a ``workflow`` block; a child that cannot be created
    (unknown workflow or version, invalid parameters) fails the block."""
    bs = state.blocks[command.block_id]
    child_id = bs.child_run_id
    assert child_id is not None
    try:
        version = command.version or step.txn.latest_version(command.workflow_id)
        if version is None:
            raise NotFoundError(f"workflow {command.workflow_id} does not exist")
        child = step.book.workflow(command.workflow_id, version)
        parameters = validate_parameters(child.spec.parameters, command.parameters)
    except (NotFoundError, ParameterError) as exc:
        planner.apply(
            [
                out.Errored(
                    command.block_id, command.attempt, "ChildRunError", str(exc), retryable=False
                )
            ]
        )
        step.commit(workflow, state, planner)
        return
    run = NewRun(child_id, command.workflow_id, version, parameters, None, step.now)
    create_run(step, run, child, True, parent=(state.run_id, command.block_id))


def stop_child(step: Step, command: cmd.CancelChild) -> None:
    """Cancel (or terminate) a child run whose parent block was stopped."""
    # it may have ended already, or never been created
    with contextlib.suppress(NotFoundError, InvalidStateError):
        control(step, command.child_run_id, command.status, "its parent run was stopped")


def notify_parent(step: Step, child: RunState, finished: cmd.FinishRun) -> None:
    """A child run ended: its parent's ``workflow`` block completes or fails with it."""
    assert child.parent_run_id is not None and child.parent_block_id is not None
    workflow, parent, planner = step.fresh(child.parent_run_id)
    bs = parent.blocks.get(child.parent_block_id)
    if bs is None or bs.child_run_id != child.run_id or bs.is_final:
        return
    planner.apply(
        [
            out.ChildFinished(
                child.parent_block_id,
                bs.attempt,
                finished.status,
                finished.outputs,
                finished.failure_reason,
            )
        ]
    )
    step.commit(workflow, parent, planner)


def signal(step: Step, run_id: str, name: str, payload: Any) -> RunState:
    """Send signal ``name`` to a run: the block waiting for it takes it, or it is kept."""
    workflow, state, planner = step.fresh(run_id)
    if state.is_terminal:
        raise InvalidStateError(f"cannot signal run {run_id}: it is {state.status.value}")
    check_signal(workflow, name, payload)
    planner.signal(name, payload)
    step.commit(workflow, state, planner)
    return state


def _retry(step: Step, workflow: CompiledWorkflow, state: RunState, planner: Planner) -> None:
    from flowforge.engine.replay import _reset_unfinished

    _reset_unfinished(state)
    state.status, state.finished_at, state.outputs = RunStatus.RUNNING, None, None
    step.journal.event(state, "run.retried", None, {})
    step.txn.update_run(
        RunUpdate(
            state.run_id,
            RunStatus.RUNNING,
            fields=("status", "finished_at", "outputs", "failure_reason"),
        )
    )
    planner.recompute()


def _orphans(step: Step, state: RunState) -> list[str]:
    """Blocks due to start whose task was dropped while the run was paused."""
    tasks = {t.block_id for t in step.txn.run_tasks(state.run_id) if t.kind == TaskKind.BLOCK}
    return [
        block_id
        for block_id, bs in state.blocks.items()
        if (bs.status == BlockStatus.RETRYING or bs.queued) and block_id not in tasks
    ]


_ACTION_FROM = {
    "resume": frozenset({RunStatus.PAUSED}),
    "retry": frozenset({RunStatus.FAILED, RunStatus.CANCELED, RunStatus.TIMED_OUT}),
}
"""Where an action may start from, when the transition table allows more (a failed run goes
back to running by retry, never by resume)."""

_ACTION_TARGET = {
    "cancel": RunStatus.CANCELED,
    "terminate": RunStatus.TERMINATED,
    "pause": RunStatus.PAUSED,
    "resume": RunStatus.RUNNING,
    "retry": RunStatus.RUNNING,
}


def _masked_scope(state: RunState) -> Callable[[Frame | None], dict[str, Any]]:
    return lambda frame: build_scope(
        state, state.params_view, MaskedSecrets(state.secret_names), frame
    )


def _now() -> datetime:
    return datetime.now(UTC)
