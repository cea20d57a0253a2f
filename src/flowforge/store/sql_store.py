"""``SqlStore``: the one store implementation, for SQLite and PostgreSQL.

Every public method is one transaction and retries transient errors (a busy SQLite file, a
dropped PostgreSQL connection, a serialization failure) with backoff and jitter. All SQL of
flowforge lives in this package.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from flowforge.engine.ports import StaleWriteError
from flowforge.engine.records import AttemptRecord, Event, RunRecord
from flowforge.errors import StoreError
from flowforge.store import schema as t
from flowforge.store.connection import create_engine
from flowforge.store.rows import event_from_row, run_from_row
from flowforge.store.transaction import Dialect, SqlTransaction, utc

T = TypeVar("T")

_TRANSIENT_MARKERS = ("database is locked", "database is busy", "deadlock", "could not serialize")
MAX_TRIES = 8
STALE_TOKEN = "stale fencing token"


class SqlStore:
    """Durable state of workflows, runs, events and tasks in one SQL database."""

    def __init__(self, url: str, *, sqlite_synchronous: str | None = None) -> None:
        self.url = url
        self.engine = create_engine(url, sqlite_synchronous=sqlite_synchronous)
        self.dialect = self.engine.dialect.name
        self._pg = self.dialect == "postgresql"
        self._dialect = Dialect(self.dialect)
        self._dbapi_error: type[BaseException] = self.engine.dialect.loaded_dbapi.Error
        self._local = threading.local()
        self._raw_connections: list[Any] = []

    def close(self) -> None:
        for raw in self._raw_connections:
            with contextlib.suppress(Exception):
                raw.close()
        self._raw_connections.clear()
        self._local = threading.local()
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------
    def transaction(self, fn: Callable[[SqlTransaction], T], worker_id: str = "") -> T:
        """Run an engine step ``fn`` in one write transaction on this thread's DBAPI connection.

        Retried whole on transient errors; ``StaleWriteError`` (another writer moved the run
        on) goes to the caller, which reloads the run and tries again."""
        optimistic = self._pg
        for attempt in range(1, MAX_TRIES + 1):
            raw = self._raw_connection()
            try:
                if self._pg:
                    return self._pg_transaction(raw, fn, worker_id, optimistic)
                raw.execute("BEGIN IMMEDIATE")
                result = fn(SqlTransaction(raw, self._dialect, worker_id, time.time()))
                raw.commit()
                return result
            except self._dbapi_error as exc:
                if STALE_TOKEN in str(exc):
                    self._rollback(raw)
                    optimistic = False
                    continue
                self._rollback(raw)
                if attempt == MAX_TRIES or not self._transient_dbapi(exc):
                    raise StoreError(f"the store failed: {exc}") from exc
            except StaleWriteError:
                self._rollback(raw)
                raise
            except BaseException:
                self._rollback(raw)
                raise
            time.sleep(min(0.01 * 2**attempt, 1.0) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    def _pg_transaction(
        self, raw: Any, fn: Callable[[SqlTransaction], T], worker_id: str, optimistic: bool
    ) -> T:
        connection = raw.driver_connection
        if not connection.autocommit:
            connection.autocommit = True  # the transaction is spelled out: see SqlTransaction
        txn = SqlTransaction(raw, self._dialect, worker_id, 0.0)
        txn.optimistic = optimistic
        try:
            result = fn(txn)
            txn.flush_buffer(commit=True)
        except BaseException:
            with contextlib.suppress(Exception):
                connection.execute("ROLLBACK")
            raise
        return result

    def _raw_connection(self) -> Any:
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self.engine.raw_connection()
            self._local.raw = raw
            self._raw_connections.append(raw)
        return raw

    def _rollback(self, raw: Any) -> None:
        try:
            raw.rollback()
        except Exception:
            with contextlib.suppress(Exception):
                raw.invalidate()
            self._local.raw = None

    def _transient_dbapi(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        if any(marker in text for marker in _TRANSIENT_MARKERS):
            return True
        if self._pg:
            import psycopg

            if isinstance(exc, psycopg.OperationalError):
                self._local.raw = None  # reconnect on the next try
                return True
        return False

    def write(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run ``fn`` in one write transaction through SQLAlchemy (administrative writes)."""
        for attempt in range(1, MAX_TRIES + 1):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                if attempt == MAX_TRIES or not self._transient(exc):
                    raise StoreError(f"the store failed: {exc.orig}") from exc
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

        def renew(conn: sa.Connection) -> int:
            now = self._now(conn)
            result = conn.execute(
                sa.update(t.tasks)
                .where(t.tasks.c.worker_id == worker_id, t.tasks.c.lease_expires_at >= now)
                .values(lease_expires_at=now + lease)
            )
            conn.execute(
                sa.update(t.workers).where(t.workers.c.id == worker_id).values(heartbeat_at=now)
            )
            return int(result.rowcount)

        return self.write(renew)

    def next_due(self) -> float | None:
        """The earliest due time of any unclaimed task, as database epoch seconds."""
        return self.read(
            lambda conn: conn.execute(
                sa.select(sa.func.min(t.tasks.c.due_at)).where(t.tasks.c.worker_id.is_(None))
            ).scalar()
        )

    def release_dead_workers_tasks(self, run_id: str, hostname: str, alive: Callable[[int], bool]) -> int:
        """Expire the leases a dead worker of this host held on the run's tasks."""

        def release(conn: sa.Connection) -> int:
            holders = conn.execute(
                sa.select(t.workers.c.id, t.workers.c.pid)
                .join(t.tasks, t.tasks.c.worker_id == t.workers.c.id)
                .where(t.tasks.c.run_id == run_id, t.workers.c.hostname == hostname)
                .distinct()
            ).all()
            dead = [worker for worker, pid in holders if not alive(pid)]
            if not dead:
                return 0
            result = conn.execute(
                sa.update(t.tasks)
                .where(t.tasks.c.run_id == run_id, t.tasks.c.worker_id.in_(dead))
                .values(lease_expires_at=0.0)
            )
            return int(result.rowcount)

        return self.write(release)

    def register_worker(self, worker_id: str, hostname: str, pid: int) -> None:
        def register(conn: sa.Connection) -> None:
            conn.execute(
                sa.insert(t.workers).values(
                    id=worker_id,
                    hostname=hostname,
                    pid=pid,
                    started_at=datetime.now(UTC),
                    heartbeat_at=self._now(conn),
                )
            )

        self.write(register)

    def deregister_worker(self, worker_id: str) -> None:
        self.write(lambda conn: conn.execute(sa.delete(t.workers).where(t.workers.c.id == worker_id)))

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

        def save(conn: sa.Connection) -> tuple[int, bool]:
            now = datetime.now(UTC)
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
            highest = conn.execute(
                sa.select(sa.func.max(t.workflow_versions.c.version)).where(
                    t.workflow_versions.c.workflow_id == workflow_id
                )
            ).scalar()
            version = (highest or 0) + 1
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

        return self.write(save)

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

        def delete(conn: sa.Connection) -> bool:
            # versions stay: runs pinned to them can still be shown, resumed and retried
            gone = conn.execute(sa.delete(t.workflows).where(t.workflows.c.id == workflow_id))
            return bool(gone.rowcount)

        return self.write(delete)


