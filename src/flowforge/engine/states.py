"""Run and block statuses, and the transitions allowed between them (as data)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run stands; values are stored as they are."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TERMINATED = "terminated"
    TIMED_OUT = "timed_out"


class BlockStatus(StrEnum):
    """Where one block of a run stands."""

    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELED = "canceled"


TERMINAL_RUN_STATUSES = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELED,
        RunStatus.TERMINATED,
        RunStatus.TIMED_OUT,
    }
)
FINAL_BLOCK_STATUSES = frozenset(
    {BlockStatus.COMPLETED, BlockStatus.FAILED, BlockStatus.SKIPPED, BlockStatus.CANCELED}
)
ACTIVE_BLOCK_STATUSES = frozenset({BlockStatus.RUNNING, BlockStatus.RETRYING, BlockStatus.WAITING})

RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELED, RunStatus.TERMINATED}),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.PAUSED,
            RunStatus.COMPLETED,
            RunStatus.FAILED,
            RunStatus.CANCELED,
            RunStatus.TERMINATED,
            RunStatus.TIMED_OUT,
        }
    ),
    RunStatus.PAUSED: frozenset(
        {RunStatus.RUNNING, RunStatus.CANCELED, RunStatus.TERMINATED, RunStatus.TIMED_OUT}
    ),
    # retry: a failed, canceled or timed-out run continues where it stopped
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.CANCELED: frozenset({RunStatus.RUNNING}),
    RunStatus.TIMED_OUT: frozenset({RunStatus.RUNNING}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.TERMINATED: frozenset(),
}

BLOCK_TRANSITIONS: dict[BlockStatus, frozenset[BlockStatus]] = {
    BlockStatus.PENDING: frozenset(
        {BlockStatus.RUNNING, BlockStatus.SKIPPED, BlockStatus.FAILED, BlockStatus.CANCELED}
    ),
    BlockStatus.RUNNING: frozenset(
        {
            BlockStatus.COMPLETED,
            BlockStatus.FAILED,
            BlockStatus.RETRYING,
            BlockStatus.WAITING,  # a durable timer: the attempt suspends
            BlockStatus.CANCELED,
        }
    ),
    BlockStatus.RETRYING: frozenset({BlockStatus.RUNNING, BlockStatus.CANCELED}),
    BlockStatus.WAITING: frozenset({BlockStatus.COMPLETED, BlockStatus.CANCELED}),
    # retry of a run: failed, canceled and skipped blocks run again
    BlockStatus.FAILED: frozenset({BlockStatus.PENDING}),
    BlockStatus.CANCELED: frozenset({BlockStatus.PENDING}),
    BlockStatus.SKIPPED: frozenset({BlockStatus.PENDING}),
    BlockStatus.COMPLETED: frozenset(),
}


def can_move_run(current: RunStatus, new: RunStatus) -> bool:
    """True when a run in ``current`` may move to ``new``."""
    return new in RUN_TRANSITIONS[current]
