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
class StartControl:
    """The engine starts a control-flow block itself (no worker): ``block.started``."""

    block_id: str
    attempt: int
    data: dict[str, Any]
    event = "block.started"


@dataclass(frozen=True, slots=True)
class StartIteration:
    """Iteration ``index`` of container ``block_id`` begins: its instances exist from now."""

    block_id: str
    index: int
    event = "iteration.started"


@dataclass(frozen=True, slots=True)
class ReceiveSignal:
    """A signal reached the run; ``delivered_to`` the waiting block that takes it, if any."""

    name: str
    payload: Any
    delivered_to: str | None
    event = "signal.received"


@dataclass(frozen=True, slots=True)
class StartChild:
    """A ``workflow`` block starts its child run (created by the caller in this transaction)."""

    block_id: str
    attempt: int
    workflow_id: str
    version: int | None
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CancelChild:
    """The parent's ``workflow`` block ended early: its child run is canceled too."""

    child_run_id: str
    status: str


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
    signal: str | None = None
    """The buffered signal the block took (a ``wait_for_signal``)."""
    annotations: dict[str, Any] | None = None
    """What the attempt noted with ``ctx.annotate`` (an ``llm`` block's token usage)."""
    event = "block.completed"


@dataclass(frozen=True, slots=True)
class FailBlock:
    block_id: str
    attempt: int
    error: dict[str, Any]
    tolerated: bool
    annotations: dict[str, Any] | None = None
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
    annotations: dict[str, Any] | None = None
    event = "block.retrying"


@dataclass(frozen=True, slots=True)
class SuspendBlock:
    block_id: str
    attempt: int
    delay: float | None
    due_at: float | None
    signal: str | None = None
    """Waits for this signal (and its timer, if any, is the time limit)."""
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
    | StartControl
    | StartIteration
    | ReceiveSignal
    | StartChild
    | CancelChild
    | ReadyBlock
    | SkipBlock
    | CompleteBlock
    | FailBlock
    | ScheduleRetry
    | SuspendBlock
    | CancelBlock
    | FinishRun
)
