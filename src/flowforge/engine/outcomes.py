"""What happened to a block attempt or a run, as reported to the planner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowforge.engine.records import LogLine


@dataclass(frozen=True, slots=True)
class Succeeded:
    block_id: str
    attempt: int
    output: Any
    logs: tuple[LogLine, ...] = ()
    annotations: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Errored:
    block_id: str
    attempt: int
    error_type: str
    message: str
    retryable: bool = True
    retry_delay: float | None = None
    logs: tuple[LogLine, ...] = ()
    annotations: dict[str, Any] | None = None

    def as_error(self) -> dict[str, Any]:
        return {"type": self.error_type, "message": self.message}


@dataclass(frozen=True, slots=True)
class Suspended:
    """The block waits for a timer: ``delay`` seconds from now, or the epoch ``due_at``."""

    block_id: str
    attempt: int
    delay: float | None = None
    due_at: float | None = None
    logs: tuple[LogLine, ...] = ()


@dataclass(frozen=True, slots=True)
class TimerFired:
    block_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """The attempt's worker died: the block runs again (at-least-once)."""

    block_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ChildFinished:
    """The child run of a ``workflow`` block ended with ``status``."""

    block_id: str
    attempt: int
    status: str
    outputs: Any
    reason: str | None


@dataclass(frozen=True, slots=True)
class DeadlineReached:
    """The run's ``settings.timeout`` expired."""


AttemptOutcome = Succeeded | Errored | Suspended
"""What running one attempt gives (the executor's result)."""
BlockOutcome = Succeeded | Errored | Suspended | TimerFired | WorkerLost | ChildFinished
Outcome = BlockOutcome | DeadlineReached
