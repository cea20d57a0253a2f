"""The store interface the engine needs, in domain verbs. ``flowforge.store`` implements it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from flowforge.engine.records import (
    AttemptWrite,
    ClaimedTask,
    Event,
    LogLine,
    NewRun,
    NewTask,
    RunRecord,
    RunUpdate,
)

T = TypeVar("T")


class StaleWriteError(Exception):
    """Another writer changed the run first (its event sequence moved): reload and retry."""


class Transaction(Protocol):
    """The verbs available inside one store transaction."""

    worker_id: str

    def get_run(self, run_id: str) -> RunRecord | None: ...
    def latest_version(self, workflow_id: str) -> int | None: ...
    def run_events(self, run_id: str, after_seq: int = 0) -> list[Event]: ...
    def run_tasks(self, run_id: str) -> list[ClaimedTask]: ...
    def insert_run(self, run: NewRun) -> None: ...
    def update_run(self, update: RunUpdate) -> None: ...
    def append_events(self, events: Sequence[Event]) -> None: ...
    def insert_tasks(self, tasks: Sequence[NewTask], lease: float) -> list[ClaimedTask]: ...
    def finish_tasks(self, tasks: Sequence[ClaimedTask]) -> list[bool]:
        """Delete tasks if this worker still holds them (fencing). One bool per task."""
        ...

    def take_leases(self, leases: Sequence[NewTask], lease: float) -> None:
        """Insert (or take over) this worker's lease rows on runs."""
        ...

    def claim_tasks(
        self, limit: int, lease: float, run_id: str | None = None, control_only: bool = False
    ) -> list[ClaimedTask]:
        """Claim due tasks nobody holds, or whose lease expired (the token goes up by one)."""
        ...

    def delete_run_tasks(self, run_id: str, task_ids: Sequence[str] | None = None) -> None: ...
    def write_logs(self, run_id: str, lines: Sequence[LogLine]) -> None: ...
    def write_attempts(self, attempts: Sequence[AttemptWrite]) -> None:
        """One ``block_runs`` row per attempt that ended."""
        ...
