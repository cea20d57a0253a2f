"""The verbs of one store transaction (``engine.ports.Transaction``), over one connection."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from flowforge.engine.ports import StaleWriteError
from flowforge.engine.records import (
    AttemptWrite,
    ClaimedTask,
    Event,
    NewRun,
    NewTask,
    RunRecord,
    RunUpdate,
)
from flowforge.store import schema as t

_INSERT_EVENTS = sa.insert(t.events)
_INSERT_ATTEMPTS = sa.insert(t.block_runs)
_UPDATE_ATTEMPT = (
    sa.update(t.block_runs)
    .where(
        t.block_runs.c.run_id == sa.bindparam("b_run_id"),
        t.block_runs.c.block_id == sa.bindparam("b_block_id"),
        t.block_runs.c.attempt == sa.bindparam("b_attempt"),
    )
    .values(
        status=sa.bindparam("status"),
        output=sa.bindparam("output"),
        error=sa.bindparam("error"),
        finished_at=sa.bindparam("finished_at"),
    )
)
_DELETE_TASK = sa.delete(t.tasks).where(
    t.tasks.c.id == sa.bindparam("b_id"), t.tasks.c.token == sa.bindparam("b_token")
)
_INSERT_TASKS = sa.insert(t.tasks)
_LAST_SEQ = sa.select(sa.func.max(t.events.c.seq)).where(t.events.c.run_id == sa.bindparam("r"))


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def run_from_row(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.id,
        workflow_id=row.workflow_id,
        workflow_version=row.workflow_version,
        status=row.status,
        parameters=row.parameters,
        outputs=row.outputs,
        failure_reason=row.failure_reason,
        idempotency_key=row.idempotency_key,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        started_at=utc(row.started_at),
        finished_at=utc(row.finished_at),
    )


def event_from_row(row: Any) -> Event:
    return Event(
        run_id=row.run_id,
        seq=row.seq,
        type=row.type,
        block_id=row.block_id,
        data=row.data or {},
        created_at=utc(row.created_at),
    )


class SqlTransaction:
    """One open transaction; every method runs SQL on its connection."""

    def __init__(self, conn: sa.Connection, worker_id: str, now: float) -> None:
        self.conn = conn
        self.worker_id = worker_id
        self.now = now
        """Database time (epoch seconds) for leases and due times in this transaction."""

    def last_seq(self, run_id: str) -> int:
        return self.conn.execute(_LAST_SEQ, {"r": run_id}).scalar() or 0

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).first()
        return run_from_row(row) if row else None

    def run_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        query = (
            sa.select(t.events)
            .where(t.events.c.run_id == run_id, t.events.c.seq > after_seq)
            .order_by(t.events.c.seq)
        )
        return [event_from_row(row) for row in self.conn.execute(query)]

    def run_tasks(self, run_id: str) -> list[ClaimedTask]:
        query = sa.select(t.tasks).where(t.tasks.c.run_id == run_id)
        return [_task_from_row(row) for row in self.conn.execute(query)]

    def insert_run(self, run: NewRun) -> None:
        self.conn.execute(
            sa.insert(t.runs).values(
                id=run.run_id,
                workflow_id=run.workflow_id,
                workflow_version=run.workflow_version,
                status="queued",
                parameters=run.parameters,
                idempotency_key=run.idempotency_key,
                created_at=run.created_at,
            )
        )

    def update_run(self, update: RunUpdate) -> None:
        values = {name: getattr(update, name) for name in update.fields}
        self.conn.execute(sa.update(t.runs).where(t.runs.c.id == update.run_id).values(values))

    def append_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        rows = [
            {
                "run_id": e.run_id,
                "seq": e.seq,
                "type": e.type,
                "block_id": e.block_id,
                "data": e.data,
                "created_at": e.created_at,
            }
            for e in events
        ]
        try:
            self.conn.execute(_INSERT_EVENTS, rows)
        except sa.exc.IntegrityError as exc:
            raise StaleWriteError(f"run {events[0].run_id} changed concurrently") from exc

    def insert_tasks(self, tasks: Sequence[NewTask], lease: float) -> list[ClaimedTask]:
        if not tasks:
            return []
        rows, claimed = [], []
        for task in tasks:
            due = task.due_at if task.due_at is not None else self.now + task.delay
            owner = self.worker_id if task.claim else None
            rows.append(
                {
                    "id": task.task_id,
                    "run_id": task.run_id,
                    "block_id": task.block_id,
                    "attempt": task.attempt,
                    "kind": task.kind,
                    "due_at": due,
                    "worker_id": owner,
                    "lease_expires_at": self.now + lease if owner else None,
                    "token": 1,
                }
            )
            if task.claim:
                claimed.append(
                    ClaimedTask(task.task_id, task.run_id, task.kind, task.block_id, task.attempt, 1)
                )
        self.conn.execute(_INSERT_TASKS, rows)
        return claimed

    def claim_tasks(
        self, limit: int, lease: float, run_id: str | None = None
    ) -> list[ClaimedTask]:
        """Claim up to ``limit`` due tasks that nobody holds (or whose lease expired)."""
        if limit <= 0:
            return []
        now = self.now
        due = sa.select(t.tasks.c.id).where(
            t.tasks.c.due_at <= now,
            sa.or_(t.tasks.c.worker_id.is_(None), t.tasks.c.lease_expires_at < now),
        )
        if run_id is not None:
            due = due.where(t.tasks.c.run_id == run_id)
        due = due.order_by(t.tasks.c.due_at).limit(limit)
        if self.conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        query = (
            sa.update(t.tasks)
            .where(t.tasks.c.id.in_(due.scalar_subquery()))
            .values(
                worker_id=self.worker_id,
                lease_expires_at=now + lease,
                token=t.tasks.c.token + 1,
            )
            .returning(
                t.tasks.c.id,
                t.tasks.c.run_id,
                t.tasks.c.kind,
                t.tasks.c.block_id,
                t.tasks.c.attempt,
                t.tasks.c.token,
            )
        )
        return [ClaimedTask(*row) for row in self.conn.execute(query)]

    def finish_tasks(self, tasks: Sequence[ClaimedTask]) -> list[bool]:
        if not tasks:
            return []
        if len(tasks) > 1:
            params = [{"b_id": task.task_id, "b_token": task.token} for task in tasks]
            if self.conn.execute(_DELETE_TASK, params).rowcount == len(tasks):
                return [True] * len(tasks)
        # some were stale (or a single task): check one by one
        return [
            self.conn.execute(_DELETE_TASK, {"b_id": task.task_id, "b_token": task.token}).rowcount
            == 1
            for task in tasks
        ]

    def delete_run_tasks(self, run_id: str, task_ids: Sequence[str] | None = None) -> None:
        query = sa.delete(t.tasks).where(t.tasks.c.run_id == run_id)
        if task_ids is not None:
            if not task_ids:
                return
            query = query.where(t.tasks.c.id.in_(list(task_ids)))
        self.conn.execute(query)

    def write_attempts(
        self, inserts: Sequence[AttemptWrite], updates: Sequence[AttemptWrite]
    ) -> None:
        if inserts:
            self.conn.execute(
                _INSERT_ATTEMPTS,
                [
                    {
                        "run_id": a.run_id,
                        "block_id": a.block_id,
                        "attempt": a.attempt,
                        "status": a.status,
                        "output": a.output,
                        "error": a.error,
                        "worker_id": a.worker_id,
                        "started_at": a.started_at,
                        "finished_at": a.finished_at,
                    }
                    for a in inserts
                ],
            )
        if updates:
            self.conn.execute(
                _UPDATE_ATTEMPT,
                [
                    {
                        "b_run_id": a.run_id,
                        "b_block_id": a.block_id,
                        "b_attempt": a.attempt,
                        "status": a.status,
                        "output": a.output,
                        "error": a.error,
                        "finished_at": a.finished_at,
                    }
                    for a in updates
                ],
            )


def _task_from_row(row: Any) -> ClaimedTask:
    return ClaimedTask(row.id, row.run_id, row.kind, row.block_id, row.attempt, row.token)


def wall_now() -> float:
    return time.time()
