"""``SqlStore``: the one store implementation, for SQLite and PostgreSQL.

Every public method is one transaction and retries transient errors (a busy SQLite file, a
dropped PostgreSQL connection, a serialization failure) with backoff and jitter. All SQL of
flowforge lives in this package.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from flowforge.engine.ports import StaleWriteError
from flowforge.engine.records import AttemptRecord, ClaimedTask, Event, RunRecord
from flowforge.errors import StoreError
from flowforge.store import schema as t
from flowforge.store.connection import create_engine
from flowforge.store.transaction import SqlTransaction, event_from_row, run_from_row, utc

T = TypeVar("T")

_TRANSIENT_MARKERS = ("database is locked", "database is busy", "deadlock", "could not serialize")
MAX_TRIES = 8


class SqlStore:
    """Durable state of workflows, runs, events and tasks in one SQL database."""

    def __init__(self, url: str, *, sqlite_synchronous: str | None = None) -> None:
        self.url = url
        self.engine = create_engine(url, sqlite_synchronous=sqlite_synchronous)
        self.dialect = self.engine.dialect.name
        self._pg = self.dialect == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------
    def transaction(self, fn: Callable[[SqlTransaction], T], worker_id: str = "") -> T:
        """Run ``fn`` in one write transaction; retried whole on transient errors."""
        for attempt in range(1, MAX_TRIES + 1):
            try:
                with self.engine.begin() as conn:
                    return fn(SqlTransaction(conn, worker_id, self._now(conn)))
            except StaleWriteError:
                raise
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                if attempt == MAX_TRIES or not self._transient(exc):
                    raise StoreError(f"the store failed: {exc.orig}") from exc
            except sa.exc.DBAPIError as exc:
                if attempt == MAX_TRIES or not self._transient(exc):
                    raise
            time.sleep(min(0.01 * 2**attempt, 1.0) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    def read(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in a read-only transaction (no write lock on SQLite)."""
        for attempt in range(1, MAX_TRIES + 1):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(flowforge_readonly=True)
                    with conn.begin():
                        return fn(conn)
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                if attempt == MAX_TRIES or not self._transient(exc):
                    raise StoreError(f"the store failed: {exc.orig}") from exc
            time.sleep(min(0.01 * 2**attempt, 1.0) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    def _transient(self, exc: sa.exc.DBAPIError) -> bool:
        if exc.connection_invalidated:
            return True
        text = str(exc.orig).lower()
        return any(marker in text for marker in _TRANSIENT_MARKERS) or isinstance(
            exc, sa.exc.OperationalError
        )

    def _now(self, conn: sa.Connection) -> float:
        # SQLite lives on one host: its clock is the host's. PostgreSQL's clock is the server's.
        if not self._pg:
            return time.time()
        return float(conn.exec_driver_sql("SELECT extract(epoch from now())").scalar_one())

    def db_now(self) -> float:
        return self.read(self._now)

    # -- tasks and leases -----------------------------------------------------------------
    def renew_leases(self, worker_id: str, lease: float) -> int:
        """Extend the leases of every task this worker holds; returns how many it holds."""

        def renew(txn: SqlTransaction) -> int:
            result = txn.conn.execute(
                sa.update(t.tasks)
                .where(t.tasks.c.worker_id == worker_id, t.tasks.c.lease_expires_at >= txn.now)
                .values(lease_expires_at=txn.now + lease)
            )
            txn.conn.execute(
                sa.update(t.workers).where(t.workers.c.id == worker_id).values(heartbeat_at=txn.now)
            )
            return int(result.rowcount)

        return self.transaction(renew, worker_id)

    def next_due(self) -> float | None:
        """The earliest due time of any unclaimed task, as database epoch seconds."""
        return self.read(
            lambda conn: conn.execute(
                sa.select(sa.func.min(t.tasks.c.due_at)).where(t.tasks.c.worker_id.is_(None))
            ).scalar()
        )

    def release_dead_workers_tasks(self, run_id: str, hostname: str, alive: Callable[[int], bool]) -> int:
        """Expire the leases a dead worker of this host held on the run's tasks."""

        def release(txn: SqlTransaction) -> int:
            holders = txn.conn.execute(
                sa.select(t.workers.c.id, t.workers.c.pid)
                .join(t.tasks, t.tasks.c.worker_id == t.workers.c.id)
                .where(t.tasks.c.run_id == run_id, t.workers.c.hostname == hostname)
                .distinct()
            ).all()
            dead = [worker for worker, pid in holders if not alive(pid)]
            if not dead:
                return 0
            result = txn.conn.execute(
                sa.update(t.tasks)
                .where(t.tasks.c.run_id == run_id, t.tasks.c.worker_id.in_(dead))
                .values(lease_expires_at=0.0)
            )
            return int(result.rowcount)

        return self.transaction(release)

    def register_worker(self, worker_id: str, hostname: str, pid: int) -> None:
        def register(txn: SqlTransaction) -> None:
            txn.conn.execute(
                sa.insert(t.workers).values(
                    id=worker_id,
                    hostname=hostname,
                    pid=pid,
                    started_at=datetime.now(UTC),
                    heartbeat_at=txn.now,
                )
            )

        self.transaction(register, worker_id)

    def deregister_worker(self, worker_id: str) -> None:
        self.transaction(
            lambda txn: txn.conn.execute(sa.delete(t.workers).where(t.workers.c.id == worker_id))
        )

    # -- reads ----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord | None:
        def get(conn: sa.Connection) -> RunRecord | None:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).first()
            return run_from_row(row) if row else None

        return self.read(get)

    def find_run_by_idempotency_key(self, workflow_id: str, key: str) -> RunRecord | None:
        def find(conn: sa.Connection) -> RunRecord | None:
            row = conn.execute(
                sa.select(t.runs).where(
                    t.runs.c.workflow_id == workflow_id, t.runs.c.idempotency_key == key
                )
            ).first()
            return run_from_row(row) if row else None

        return self.read(find)

    def list_runs(
        self, workflow_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        def query(conn: sa.Connection) -> list[RunRecord]:
            q = sa.select(t.runs).order_by(t.runs.c.created_at.desc(), t.runs.c.id).limit(limit)
            if workflow_id:
                q = q.where(t.runs.c.workflow_id == workflow_id)
            if status:
                q = q.where(t.runs.c.status == status)
            return [run_from_row(row) for row in conn.execute(q)]

        return self.read(query)

    def run_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        def query(conn: sa.Connection) -> list[Event]:
            q = (
                sa.select(t.events)
                .where(t.events.c.run_id == run_id, t.events.c.seq > after_seq)
                .order_by(t.events.c.seq)
            )
            return [event_from_row(row) for row in conn.execute(q)]

        return self.read(query)

    def run_attempts(self, run_id: str) -> list[AttemptRecord]:
        def query(conn: sa.Connection) -> list[AttemptRecord]:
            q = (
                sa.select(t.block_runs)
                .where(t.block_runs.c.run_id == run_id)
                .order_by(t.block_runs.c.block_id, t.block_runs.c.attempt)
            )
            return [
                AttemptRecord(
                    run_id=row.run_id,
                    block_id=row.block_id,
                    attempt=row.attempt,
                    status=row.status,
                    output=row.output,
                    error=row.error,
                    worker_id=row.worker_id,
                    started_at=utc(row.started_at),
                    finished_at=utc(row.finished_at),
                )
                for row in conn.execute(q)
            ]

        return self.read(query)

    # -- workflows ------------------------------------------------------------------------
    def save_workflow(
        self, workflow_id: str, title: str | None, definition: dict[str, Any], digest: str
    ) -> tuple[int, bool]:
        """Store a definition; a changed one becomes version N+1. Returns (version, created)."""

        def save(txn: SqlTransaction) -> tuple[int, bool]:
            conn, now = txn.conn, datetime.now(UTC)
            latest = conn.execute(
                sa.select(t.workflows.c.latest_version).where(t.workflows.c.id == workflow_id)
            ).scalar()
            if latest is not None:
                current = conn.execute(
                    sa.select(t.workflow_versions.c.digest).where(
                        t.workflow_versions.c.workflow_id == workflow_id,
                        t.workflow_versions.c.version == latest,
                    )
                ).scalar()
                if current == digest:
                    return int(latest), False
            version = (latest or 0) + 1
            conn.execute(
                sa.insert(t.workflow_versions).values(
                    workflow_id=workflow_id,
                    version=version,
                    definition=definition,
                    digest=digest,
                    created_at=now,
                )
            )
            if latest is None:
                conn.execute(
                    sa.insert(t.workflows).values(
                        id=workflow_id,
                        latest_version=version,
                        title=title,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(
                    sa.update(t.workflows)
                    .where(t.workflows.c.id == workflow_id)
                    .values(latest_version=version, title=title, updated_at=now)
                )
            return version, True

        return self.transaction(save)

    def get_workflow_version(
        self, workflow_id: str, version: int | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        def get(conn: sa.Connection) -> tuple[int, dict[str, Any]] | None:
            wanted = version
            if wanted is None:
                wanted = conn.execute(
                    sa.select(t.workflows.c.latest_version).where(t.workflows.c.id == workflow_id)
                ).scalar()
                if wanted is None:
                    return None
            definition = conn.execute(
                sa.select(t.workflow_versions.c.definition).where(
                    t.workflow_versions.c.workflow_id == workflow_id,
                    t.workflow_versions.c.version == wanted,
                )
            ).scalar()
            return (int(wanted), definition) if definition is not None else None

        return self.read(get)

    def list_workflows(self) -> list[dict[str, Any]]:
        def query(conn: sa.Connection) -> list[dict[str, Any]]:
            q = sa.select(t.workflows).order_by(t.workflows.c.id)
            return [
                {
                    "workflow_id": row.id,
                    "title": row.title,
                    "latest_version": row.latest_version,
                    "created_at": utc(row.created_at),
                    "updated_at": utc(row.updated_at),
                }
                for row in conn.execute(q)
            ]

        return self.read(query)

    def list_versions(self, workflow_id: str) -> list[dict[str, Any]]:
        def query(conn: sa.Connection) -> list[dict[str, Any]]:
            q = (
                sa.select(
                    t.workflow_versions.c.version,
                    t.workflow_versions.c.digest,
                    t.workflow_versions.c.created_at,
                )
                .where(t.workflow_versions.c.workflow_id == workflow_id)
                .order_by(t.workflow_versions.c.version)
            )
            return [
                {"version": r.version, "digest": r.digest, "created_at": utc(r.created_at)}
                for r in conn.execute(q)
            ]

        return self.read(query)

    def delete_workflow(self, workflow_id: str) -> bool:
        """Delete a workflow and its versions; its runs stay (they carry their definition id)."""

        def delete(txn: SqlTransaction) -> bool:
            gone = txn.conn.execute(sa.delete(t.workflows).where(t.workflows.c.id == workflow_id))
            txn.conn.execute(
                sa.delete(t.workflow_versions).where(
                    t.workflow_versions.c.workflow_id == workflow_id
                )
            )
            return bool(gone.rowcount)

        return self.transaction(delete)


def unclaimed(tasks: Sequence[ClaimedTask]) -> list[str]:
    return [task.task_id for task in tasks]
