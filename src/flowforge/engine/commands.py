"""What the planner decided, to be written in one transaction (each command is also an event)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StartRun:
    event = "run.started"


@dataclass(frozen=True, slots=True)
class ReadyBlock:
    """The block may start attempt ``attempt``: a worker claims it (maybe this one, at once)."""

    block_id: str
    attempt: int
    retry_of: bool = False


@dataclass(frozen=True, slots=True)
class SkipBlock:
    block_id: str
    reason: str
    event = "block.skipped"


@dataclass(frozen=True, slots=True)
class CompleteBlock:
    block_id: str
    attempt: int
    output: Any
    event = "block.completed"


@dataclass(frozen=True, slots=True)
class FailBlock:
    block_id: str
    attempt: int
    error: dict[str, Any]
    tolerated: bool
    event = "block.failed"


@dataclass(frozen=True, slots=True)
class ScheduleRetry:
    block_id: str
    attempt: int
    error: dict[str, Any]
    next_attempt: int
    delay: float
    lost: bool = False
    """The attempt's worker died: this retry does not use up the retry budget."""
    event = "block.retrying"


@dataclass(frozen=True, slots=True)
class SuspendBlock:
    block_id: str
    attempt: int
    delay: float | None
    due_at: float | None
    event = "block.waiting"


@dataclass(frozen=True, slots=True)
class CancelBlock:
    block_id: str
    attempt: int
    event = "block.canceled"


@dataclass(frozen=True, slots=True)
class FinishRun:
    status: str
    outputs: dict[str, Any] | None
    failure_reason: str | None


Command = (
    StartRun
    | ReadyBlock
    | SkipBlock
    | CompleteBlock
    | FailBlock
    | ScheduleRetry
    | SuspendBlock
    | CancelBlock
    | FinishRun
)
