"""The in-memory picture of one run: what the planner reads and updates.

It is rebuilt from the store whenever another process may have changed the run (the last
event's sequence number tells), and kept in memory between transactions otherwise, so the
engine does not read a run's blocks back for every completion.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowforge.engine.states import FINAL_BLOCK_STATUSES, BlockStatus, RunStatus


@dataclass(slots=True)
class Progress:
    """How far a ``for_each`` or ``loop`` got: its items, and its iterations so far."""

    items: list[Any] | None = None
    """The evaluated ``items`` of a ``for_each`` (kept in the event that started it)."""
    started: int = 0
    """Iterations started (frames ``0 .. started - 1`` exist)."""
    active: int = 0
    """Iterations started and not over yet."""
    failed: dict[str, Any] | None = None
    """The error of the first iteration that failed without ``continue_on_failure``."""


@dataclass(slots=True)
class BlockState:
    """The current state of one block of a run (its latest attempt)."""

    status: BlockStatus = BlockStatus.PENDING
    attempt: int = 0
    """Number of the latest attempt; 0 when it never started."""
    failures: int = 0
    """Attempts that ended in an error: they count against ``retry.max_attempts``."""
    output: Any = None
    error: dict[str, Any] | None = None
    tolerated: bool = False
    """Failed with ``continue_on_failure``: dependents treat it as a success."""
    queued: bool = False
    """Ready and holding a slot, but its task is not claimed by any worker yet."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    leased_by: str | None = None
    """The worker running the current attempt under its run lease (no task row of its own)."""
    # derived from the dependencies' outcomes, for O(1) trigger-rule checks
    deps_final: int = 0
    deps_success: int = 0
    deps_failed: int = 0
    decided: bool = False
    """The trigger rule has been decided (started, queued or skipped) for this pass."""
    control: bool = False
    """Run by the engine itself (control flow): it never holds a worker slot."""
    progress: Progress | None = None
    """Iterations of a started ``for_each`` or ``loop``."""
    child_run_id: str | None = None
    """The run a ``workflow`` block started."""
    annotations: dict[str, Any] | None = None
    """What the completed attempt noted with ``ctx.annotate``."""

    @property
    def holds_slot(self) -> bool:
        return self.queued or (self.status == BlockStatus.RUNNING and not self.control)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_BLOCK_STATUSES

    @property
    def attempts(self) -> int:
        """Attempts started so far (a retrying block has numbered its next one already)."""
        return self.attempt - 1 if self.status == BlockStatus.RETRYING else self.attempt

    def as_scope(self) -> dict[str, Any]:
        """The mapping templates see as ``blocks.ID``."""
        return {
            "output": self.output,
            "status": self.status.value,
            "error": self.error,
            "attempts": self.attempts,
        }


@dataclass(slots=True)
class RunState:
    """One run as the engine knows it at sequence number ``seq``."""

    run_id: str
    workflow_id: str
    workflow_version: int
    status: RunStatus
    parameters: dict[str, Any]
    created_at: datetime
    blocks: dict[str, BlockState]
    seq: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outputs: dict[str, Any] | None = None
    failure_reason: str | None = None
    failing_fast: bool = False
    organization_id: str | None = None
    params_view: dict[str, Any] = field(default_factory=dict)
    """``parameters`` as templates see them: secret parameters read ``***``."""
    secret_names: list[str] = field(default_factory=list)
    source_dir: str | None = None
    """Where the definition file was when the run was queued (``python`` imports)."""
    ready: deque[str] = field(default_factory=deque)
    """Blocks whose trigger rule allows them to start, waiting for a concurrency slot."""
    ready_control: deque[str] = field(default_factory=deque)
    """Control-flow blocks allowed to start: they need no slot, only a running run."""
    frames: dict[str, Any] = field(default_factory=dict)
    """Iterations of containers by frame id (``engine.frames.Frame``)."""
    nodes: dict[str, Any] = field(default_factory=dict)
    """Instance id -> ``engine.frames.Node`` (the body block it runs, its frame)."""
    signals: dict[str, deque[Any]] = field(default_factory=dict)
    """Signals received that no block has taken yet, by name, oldest first."""
    parent_run_id: str | None = None
    parent_block_id: str | None = None
    running: int = 0
    """Blocks holding a slot: running, or queued for a worker."""

    @property
    def is_terminal(self) -> bool:
        from flowforge.engine.states import TERMINAL_RUN_STATUSES

        return self.status in TERMINAL_RUN_STATUSES

    def run_scope(self) -> dict[str, Any]:
        """The mapping templates see as ``run``."""
        return {
            "id": self.run_id,
            "workflow_id": self.workflow_id,
            "workflow_version": self.workflow_version,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "organization_id": self.organization_id,
        }


def count_dependency(dependent: BlockState, dependency: BlockState) -> None:
    """``dependency`` reached a final status: count it for ``dependent``'s trigger rule."""
    dependent.deps_final += 1
    status = dependency.status
    if status == BlockStatus.COMPLETED or (status == BlockStatus.FAILED and dependency.tolerated):
        dependent.deps_success += 1
    elif status in (BlockStatus.FAILED, BlockStatus.CANCELED):
        dependent.deps_failed += 1
