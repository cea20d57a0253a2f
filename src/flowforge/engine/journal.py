"""Write the planner's commands through a store transaction: rows, tasks and events.

Every command becomes the writes it needs and one event with the run's next sequence number,
all in the caller's transaction: the state change is committed before anyone acts on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowforge.definition.compiled import CompiledWorkflow
from flowforge.engine import commands as cmd
from flowforge.engine.ports import Transaction
from flowforge.engine.records import AttemptWrite, ClaimedTask, Event, NewTask, RunUpdate, TaskKind
from flowforge.engine.run_state import RunState
from flowforge.engine.states import BlockStatus, RunStatus


def block_task_id(run_id: str, block_id: str) -> str:
    return f"{run_id}:{block_id}"


def timer_task_id(run_id: str, block_id: str) -> str:
    return f"{run_id}:{block_id}:timer"


def deadline_task_id(run_id: str) -> str:
    return f"{run_id}:deadline"


def lease_task_id(run_id: str, worker_id: str) -> str:
    return f"{run_id}:lease:{worker_id}"


_CONTROL_COMMANDS = (
    cmd.StartControl,
    cmd.StartIteration,
    cmd.ReceiveSignal,
    cmd.StartChild,
    cmd.CancelChild,
)


@dataclass
class Slots:
    """What this worker can take on in this transaction: ``free`` more block attempts, and
    the runs whose lease it holds already (``leases``: it dispatches their blocks to itself
    without a task row each)."""

    free: int
    leases: set[str] = field(default_factory=set)


@dataclass
class Journal:
    """Collects the writes of one transaction, then flushes them in a few batched statements."""

    txn: Transaction
    now: datetime
    lease: float
    slots: Slots
    events: list[Event] = field(default_factory=list)
    tasks: list[NewTask] = field(default_factory=list)
    attempts: list[AttemptWrite] = field(default_factory=list)
    """Attempts that ended in this transaction (one ``block_runs`` row each)."""
    claimed: list[ClaimedTask] = field(default_factory=list)
    leases: list[NewTask] = field(default_factory=list)
    """Run leases this transaction takes (at most one per run and worker)."""
    canceled: list[tuple[str, str, bool]] = field(default_factory=list)
    """(run_id, block_id, graceful) whose running attempt must be stopped after the commit:
    gracefully when the run was canceled, at once when it was terminated, timed out or is
    failing fast."""
    _flushed_events: int = 0

    def event(self, state: RunState, kind: str, block_id: str | None, data: dict[str, Any]) -> None:
        state.seq += 1
        self.events.append(Event(state.run_id, state.seq, kind, block_id, data, self.now))

    def start_attempt(
        self, state: RunState, block_id: str, attempt: int, leased: bool = False
    ) -> None:
        """The block's attempt starts on this worker: ``block.started``. Its ``block_runs`` row is
        written once, when the attempt ends (the event log already says it started)."""
        bs = state.blocks[block_id]
        bs.leased_by = self.txn.worker_id if leased else None
        if bs.status != BlockStatus.RUNNING:
            state.running += 0 if bs.queued else 1
        bs.status, bs.queued, bs.started_at, bs.attempt = (
            BlockStatus.RUNNING,
            False,
            self.now,
            attempt,
        )
        data: dict[str, Any] = {"attempt": attempt, "worker": self.txn.worker_id}
        if leased:
            data["leased"] = True
        self.event(state, "block.started", block_id, data)

    def write(
        self, workflow: CompiledWorkflow, state: RunState, commands: Sequence[cmd.Command]
    ) -> None:
        for command in commands:
            self._write_one(workflow, state, command)

    def _write_one(self, workflow: CompiledWorkflow, state: RunState, c: cmd.Command) -> None:
        run_id = state.run_id
        if isinstance(c, _CONTROL_COMMANDS):
            self._write_control(state, c)
        elif isinstance(c, cmd.ReadyBlock):
            self._ready(state, c)
        elif isinstance(c, cmd.CompleteBlock | cmd.FailBlock):
            self._end_attempt(state, c)
        elif isinstance(c, cmd.ScheduleRetry):
            self._retry(state, c)
        elif isinstance(c, cmd.SuspendBlock):
            self._suspend(state, c)
        elif isinstance(c, cmd.SkipBlock):
            self.event(state, c.event, c.block_id, {"reason": c.reason})
        elif isinstance(c, cmd.CancelBlock):
            self._finish_attempt(state, c.block_id, c.attempt, "canceled")
            self.txn.delete_run_tasks(
                run_id, [block_task_id(run_id, c.block_id), timer_task_id(run_id, c.block_id)]
            )
            self.canceled.append((run_id, c.block_id, state.status == RunStatus.CANCELED))
            self.event(state, c.event, c.block_id, {"attempt": c.attempt})
        elif isinstance(c, cmd.StartRun):
            self.txn.update_run(
                RunUpdate(
                    run_id,
                    RunStatus.RUNNING,
                    started_at=state.started_at,
                    fields=("status", "started_at"),
                )
            )
            timeout = workflow.spec.settings.timeout
            started: dict[str, Any] = {}
            if timeout:
                self.tasks.append(
                    NewTask(deadline_task_id(run_id), run_id, TaskKind.DEADLINE, delay=timeout)
                )
                started["due_at"] = self._due(None, timeout)  # the run's deadline
            self.event(state, c.event, None, started)
        elif isinstance(c, cmd.FinishRun):
            self._finish_run(state, c)

    def _end_attempt(self, state: RunState, c: cmd.CompleteBlock | cmd.FailBlock) -> None:
        """The block's attempt completed, or failed for good."""
        if isinstance(c, cmd.CompleteBlock):
            self._finish_attempt(state, c.block_id, c.attempt, "completed", output=c.output)
            data: dict[str, Any] = {"attempt": c.attempt, "output": c.output}
            if c.signal is not None:
                data["signal"] = c.signal  # it took a signal kept for it
        else:
            self._finish_attempt(state, c.block_id, c.attempt, "failed", error=c.error)
            data = {"attempt": c.attempt, "error": c.error, "tolerated": c.tolerated}
        if c.annotations:
            data["annotations"] = c.annotations
        self.event(state, c.event, c.block_id, data)

    def _retry(self, state: RunState, c: cmd.ScheduleRetry) -> None:
        """A failed or lost attempt: the next one is a task, due after the retry delay."""
        run_id = state.run_id
        self._finish_attempt(state, c.block_id, c.attempt, "failed", error=c.error)
        # a block whose worker died goes back to its place in the queue (due when its lost
        # attempt started), not behind the work queued since
        lost_start = state.blocks[c.block_id].started_at
        due_at = lost_start.timestamp() if c.lost and lost_start is not None else None
        self.tasks.append(
            NewTask(
                block_task_id(run_id, c.block_id),
                run_id,
                TaskKind.BLOCK,
                c.block_id,
                c.next_attempt,
                delay=c.delay,
                due_at=due_at,
            )
        )
        data = {
            "attempt": c.attempt,
            "error": c.error,
            "next_attempt": c.next_attempt,
            "delay": round(c.delay, 3),
            "due_at": self._due(due_at, c.delay),
            "lost": c.lost,
        }
        if c.annotations:
            data["annotations"] = c.annotations
        self.event(state, c.event, c.block_id, data)

    def _suspend(self, state: RunState, c: cmd.SuspendBlock) -> None:
        """A waiting block: a timer task wakes it, unless it waits for a signal only."""
        run_id = state.run_id
        if c.delay is None and c.due_at is None:
            self.event(state, c.event, c.block_id, {"attempt": c.attempt, "signal": c.signal})
            return
        self.tasks.append(
            NewTask(
                timer_task_id(run_id, c.block_id),
                run_id,
                TaskKind.TIMER,
                c.block_id,
                c.attempt,
                delay=c.delay or 0.0,
                due_at=c.due_at,
            )
        )
        self.event(
            state,
            c.event,
            c.block_id,
            {
                "attempt": c.attempt,
                "due_at": self._due(c.due_at, c.delay),
                "delay": c.delay,
                **({"signal": c.signal} if c.signal else {}),
            },
        )

    def _write_control(self, state: RunState, c: cmd.Command) -> None:
        """Events of control-flow blocks (child runs are created by ``advance``)."""
        run_id = state.run_id
        if isinstance(c, cmd.StartControl):
            self.event(state, c.event, c.block_id, {"attempt": c.attempt, **c.data})
        elif isinstance(c, cmd.StartIteration):
            self.event(state, c.event, c.block_id, {"index": c.index})
        elif isinstance(c, cmd.ReceiveSignal):
            if c.delivered_to is not None:
                self.txn.delete_run_tasks(run_id, [timer_task_id(run_id, c.delivered_to)])
            data = {"name": c.name, "payload": c.payload, "delivered_to": c.delivered_to}
            self.event(state, c.event, None, data)

    def _ready(self, state: RunState, c: cmd.ReadyBlock) -> None:
        """A ready block: this worker runs it now if it has room, else any worker claims it.

        Run at once, it needs no task row: the worker's lease on the run covers it (one row
        per run and worker, renewed by the heartbeat), which saves two writes per block."""
        run_id = state.run_id
        task_id = block_task_id(run_id, c.block_id)
        if self.slots.free <= 0:
            self.tasks.append(NewTask(task_id, run_id, TaskKind.BLOCK, c.block_id, c.attempt))
            return
        self.slots.free -= 1
        if run_id not in self.slots.leases:
            lease_id = lease_task_id(run_id, self.txn.worker_id)
            self.leases.append(NewTask(lease_id, run_id, TaskKind.LEASE, claim=True))
            self.slots.leases.add(run_id)
        self.claimed.append(ClaimedTask(task_id, run_id, TaskKind.BLOCK, c.block_id, c.attempt, 0))
        self.start_attempt(state, c.block_id, c.attempt, leased=True)

    def _finish_attempt(
        self,
        state: RunState,
        block_id: str,
        attempt: int,
        status: str,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        if attempt > 0:
            lost = error is not None and error.get("type") == "WorkerLost"
            self.attempts.append(
                AttemptWrite(
                    state.run_id,
                    block_id,
                    attempt,
                    status,
                    output=output,
                    error=error,
                    worker_id=None if lost else self.txn.worker_id,
                    started_at=state.blocks[block_id].started_at,
                    finished_at=self.now,
                )
            )

    def _due(self, due_at: float | None, delay: float | None) -> float:
        """When a timer fires, in epoch seconds, for the event (the task holds the truth)."""
        return due_at if due_at is not None else self.now.timestamp() + (delay or 0.0)

    def _finish_run(self, state: RunState, c: cmd.FinishRun) -> None:
        run_id = state.run_id
        self.flush_tasks()
        self.txn.delete_run_tasks(run_id)  # its timers, deadline and leases too
        self.slots.leases.discard(run_id)
        self.txn.update_run(
            RunUpdate(
                run_id,
                c.status,
                finished_at=state.finished_at,
                outputs=c.outputs,
                failure_reason=c.failure_reason,
                fields=("status", "finished_at", "outputs", "failure_reason"),
            )
        )
        data: dict[str, Any] = (
            {"outputs": c.outputs} if c.status == "completed" else {"reason": c.failure_reason}
        )
        self.event(state, f"run.{c.status}", None, data)

    def flush_tasks(self) -> None:
        if self.tasks:
            self.txn.insert_tasks(self.tasks, self.lease)
            self.tasks = []
        if self.leases:
            self.txn.take_leases(self.leases, self.lease)
            self.leases = []

    def flush(self) -> None:
        """Write what was collected. Events go first: a concurrent writer of the same run fails
        on their (run_id, seq) key before anything else is written."""
        self.txn.append_events(self.events[self._flushed_events :])
        self._flushed_events = len(self.events)
        self.flush_tasks()
        self.txn.write_attempts(self.attempts)
        self.attempts = []
