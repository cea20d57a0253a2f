"""Rebuild a run's state from its event history: the log is the source of truth."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from flowforge.definition.compiled import CompiledWorkflow
from flowforge.engine.frames import locate, open_frame
from flowforge.engine.planner import failure_reason
from flowforge.engine.records import ClaimedTask, Event, RunRecord, TaskKind
from flowforge.engine.run_state import BlockState, Progress, RunState
from flowforge.engine.states import BlockStatus, RunStatus

_RUN_EVENT_STATUS = {
    "run.started": RunStatus.RUNNING,
    "run.resumed": RunStatus.RUNNING,
    "run.retried": RunStatus.RUNNING,
    "run.paused": RunStatus.PAUSED,
    "run.completed": RunStatus.COMPLETED,
    "run.failed": RunStatus.FAILED,
    "run.canceled": RunStatus.CANCELED,
    "run.terminated": RunStatus.TERMINATED,
    "run.timed_out": RunStatus.TIMED_OUT,
}


def new_state(workflow: CompiledWorkflow, run: RunRecord) -> RunState:
    """A run's state before any event: every block pending."""
    specs = workflow.spec.parameters
    secret_names = [name for name, spec in specs.items() if spec.type == "secret"]
    params_view = {
        name: ("***" if name in secret_names else value) for name, value in run.parameters.items()
    }
    return RunState(
        run_id=run.run_id,
        workflow_id=run.workflow_id,
        workflow_version=run.workflow_version,
        status=RunStatus.QUEUED,
        parameters=run.parameters,
        created_at=run.created_at,
        blocks={
            block_id: BlockState(control=block.control)
            for block_id, block in workflow.blocks.items()
        },
        params_view=params_view,
        secret_names=secret_names,
    )


def replay(
    workflow: CompiledWorkflow,
    run: RunRecord,
    events: Iterable[Event],
    tasks: Iterable[ClaimedTask],
) -> RunState:
    """The state after ``events``; unclaimed block tasks mark their blocks as queued."""
    state = new_state(workflow, run)
    state.started_at, state.finished_at = run.started_at, run.finished_at
    state.outputs, state.failure_reason = run.outputs, run.failure_reason
    for event in events:
        state.seq = event.seq
        _apply(workflow, state, event)
    if workflow.spec.settings.fail_fast and state.failure_reason and not state.is_terminal:
        state.failing_fast = True
    for task in tasks:
        if task.kind == TaskKind.BLOCK and task.block_id in state.blocks:
            bs = state.blocks[task.block_id]
            if bs.status in (BlockStatus.PENDING, BlockStatus.RETRYING) or bs.queued:
                bs.attempt = task.attempt
                bs.queued = bs.status == BlockStatus.PENDING
    return state


def _apply(workflow: CompiledWorkflow, state: RunState, event: Event) -> None:
    if event.type == "run.queued":
        state.source_dir = event.data.get("source_dir")
        state.parent_run_id = event.data.get("parent_run_id")
        state.parent_block_id = event.data.get("parent_block_id")
        return
    if event.type == "iteration.started" and event.block_id in state.blocks:
        open_frame(workflow, state, event.block_id, event.data["index"])
        return
    if event.type == "signal.received":
        if event.data.get("delivered_to") is None:
            state.signals.setdefault(event.data["name"], deque()).append(event.data.get("payload"))
        return
    status = _RUN_EVENT_STATUS.get(event.type)
    if status is not None:
        state.status = status
        if event.type == "run.retried":
            _reset_unfinished(state)
        if event.type == "run.failed":
            state.failure_reason = event.data.get("reason")
        return
    apply_block_event = _BLOCK_EVENTS.get(event.type)
    if apply_block_event is not None and event.block_id in state.blocks:
        bs = state.blocks[event.block_id]
        apply_block_event(state, bs, event)
        if event.type == "block.started" and bs.control:
            kind = locate(workflow, state, event.block_id)[0].kind
            if kind in ("for_each", "loop"):
                bs.progress = Progress(items=event.data.get("items"))
            bs.child_run_id = event.data.get("child_run_id")


def _started(state: RunState, bs: BlockState, event: Event) -> None:
    bs.status, bs.attempt, bs.queued = BlockStatus.RUNNING, event.data["attempt"], False
    bs.started_at = event.created_at
    bs.leased_by = event.data.get("worker") if event.data.get("leased") else None


def _completed(state: RunState, bs: BlockState, event: Event) -> None:
    bs.status, bs.output, bs.error = BlockStatus.COMPLETED, event.data.get("output"), None
    bs.finished_at = event.created_at
    bs.annotations = event.data.get("annotations")
    taken = event.data.get("signal")
    if taken is not None and state.signals.get(taken):
        state.signals[taken].popleft()


def _failed(state: RunState, bs: BlockState, event: Event) -> None:
    bs.status, bs.error, bs.output = BlockStatus.FAILED, event.data.get("error"), None
    bs.finished_at = event.created_at
    bs.attempt = event.data.get("attempt", bs.attempt)
    bs.tolerated = bool(event.data.get("tolerated"))
    bs.failures += 1
    in_body = event.block_id in state.nodes
    if not bs.tolerated and not in_body and state.failure_reason is None:
        state.failure_reason = failure_reason(event.block_id or "", bs.error or {})


def _retrying(state: RunState, bs: BlockState, event: Event) -> None:
    bs.status, bs.error = BlockStatus.RETRYING, event.data.get("error")
    bs.attempt = event.data["next_attempt"]
    if not event.data.get("lost"):
        bs.failures += 1


def _waiting(state: RunState, bs: BlockState, event: Event) -> None:
    bs.status = BlockStatus.WAITING


def _skipped(state: RunState, bs: BlockState, event: Event) -> None:
    bs.status, bs.finished_at = BlockStatus.SKIPPED, event.created_at


def _canceled(state: RunState, bs: BlockState, event: Event) -> None:
    bs.status, bs.queued, bs.finished_at = BlockStatus.CANCELED, False, event.created_at


_BLOCK_EVENTS: dict[str, Callable[[RunState, BlockState, Event], None]] = {
    "block.started": _started,
    "block.completed": _completed,
    "block.failed": _failed,
    "block.retrying": _retrying,
    "block.waiting": _waiting,
    "block.skipped": _skipped,
    "block.canceled": _canceled,
}


def _reset_unfinished(state: RunState) -> None:
    """``retry`` of a run: failed, canceled and skipped blocks become pending again."""
    state.failing_fast = False
    state.failure_reason = None
    for bs in state.blocks.values():
        if bs.status in (BlockStatus.FAILED, BlockStatus.CANCELED) and bs.progress is not None:
            # a for_each or loop goes on where it stopped, as its next attempt: its finished
            # iterations stay
            bs.status, bs.error, bs.tolerated, bs.failures = BlockStatus.RUNNING, None, False, 0
            bs.attempt += 1
            continue
        if bs.status in (BlockStatus.FAILED, BlockStatus.CANCELED, BlockStatus.SKIPPED):
            bs.status, bs.output, bs.error, bs.tolerated, bs.failures = (
                BlockStatus.PENDING,
                None,
                None,
                False,
                0,
            )
