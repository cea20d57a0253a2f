"""Plain records exchanged between the engine and the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a run's history; also what observers receive."""

    run_id: str
    seq: int
    type: str
    block_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run's row, without its blocks."""

    run_id: str
    workflow_id: str
    workflow_version: int
    status: str
    parameters: dict[str, Any]
    outputs: dict[str, Any] | None
    failure_reason: str | None
    idempotency_key: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of one block (``block_runs`` row)."""

    run_id: str
    block_id: str
    attempt: int
    status: str
    output: Any
    error: dict[str, Any] | None
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None


class TaskKind:
    BLOCK = "block"
    """Run one attempt of a block."""
    TIMER = "timer"
    """A waiting block's timer is due."""
    DEADLINE = "deadline"
    """The run's timeout expires."""
    START = "start"
    """A queued run is to be started."""
    LEASE = "lease"
    """A worker runs blocks of the run it dispatched to itself: while the worker lives, it
    renews this row; when it dies, whoever claims the expired row recovers those blocks."""


@dataclass(frozen=True, slots=True)
class NewTask:
    task_id: str
    run_id: str
    kind: str
    block_id: str | None = None
    attempt: int = 0
    delay: float = 0.0
    """Due this many seconds from the database's now."""
    due_at: float | None = None
    """Or due at this epoch instant."""
    claim: bool = False
    """Claimed at once by the inserting worker."""


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """Work a worker holds. ``token`` 0: a block it dispatched to itself, which has no row of
    its own (its run lease covers it; the run's event sequence fences its completion)."""

    task_id: str
    run_id: str
    kind: str
    block_id: str | None
    attempt: int
    token: int

    @property
    def has_row(self) -> bool:
        return self.token > 0


@dataclass(frozen=True, slots=True)
class NewRun:
    run_id: str
    workflow_id: str
    workflow_version: int
    parameters: dict[str, Any]
    idempotency_key: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptWrite:
    """Insert or update of one ``block_runs`` row."""

    run_id: str
    block_id: str
    attempt: int
    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    worker_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line a block attempt logged (``ctx.logger``, or a process's captured output)."""

    block_id: str
    attempt: int
    line: int
    level: str
    message: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunUpdate:
    run_id: str
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outputs: dict[str, Any] | None = None
    failure_reason: str | None = None
    fields: tuple[str, ...] = ("status",)
    """Which of the fields above to write."""
