"""``SqlStore``: the one store implementation, for SQLite and PostgreSQL.

Every public method is one transaction and retries transient errors (a busy SQLite file, a
dropped PostgreSQL connection, a serialization failure) with backoff and jitter. The engine's
steps run through ``transaction``; all statements are named queries in ``queries.py``, sent
through the DBAPI directly. SQLAlchemy (``schema.py``, ``migrate.py``) defines and migrates the
schema and is imported only for that.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from flowforge.engine.ports import StaleWriteError
from flowforge.engine.records import AttemptRecord, Event, LogLine, RunRecord
from flowforge.errors import StoreError
from flowforge.store.connector import Connector
from flowforge.store.transaction import Dialect, Session, SqlTransaction, utc

T = TypeVar("T")

_TRANSIENT_MARKERS = (
    "database is locked",
    "database is busy",
    "deadlock",
    "could not serialize",
    "server closed the connection",
    "connection",
)
MAX_TRIES = 8
STALE_TOKEN = "stale fencing token"


class SqlStore:
    """Durable state of workflows, runs, events and tasks in one SQL database."""

    def __init__(self, url: str, *, sqlite_synchronous: str | None = None) -> None:
        self.url = url
        self.connector = Connector(url, sqlite_synchronous=sqlite_synchronous)
        self.dialect = self.connector.dialect
        self._pg = self.dialect == "postgresql"
        self._dialect = Dialect(self.dialect)
        self._dbapi_error = self.connector.dbapi_error
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        """A SQLAlchemy engine on the same database (schema creation and migrations)."""
        if self._engine is None:
            from flowforge.store.connection import create_engine

            self._engine = create_engine(
                self.connector.sqlalchemy_url,
                sqlite_synchronous=getattr(self.connector, "synchronous", None),
            )
        return self._engine

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(Exception):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()
        if self._engine is not None:
            self._engine.dispose()

    # -- transactions ---------------------------------------------------------------------
    def transaction(
        self, fn: Callable[[SqlTransaction], T], worker_id: str = "", *, readonly: bool = False
    ) -> T:
        """Run ``fn`` in one transaction on this thread's connection.

        Retried whole on transient errors; ``StaleWriteError`` (another writer moved the run
        on) goes to the caller, which forgets the run's cached state and tries again.

        A call made while this thread already has a transaction open (a workflow definition
        read while a run is being loaded) joins that transaction."""
        current = getattr(self._local, "txn", None)
        if current is not None:
            return fn(current)
        optimistic = self._pg
        for attempt in range(1, MAX_TRIES + 1):
            session = self._session()
            try:
                if self._pg:
                    return self._pg_transaction(session, fn, worker_id, optimistic)
                session.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
                result = self._within(
                    fn, SqlTransaction(session, self._dialect, worker_id, time.time())
                )
                session.execute("COMMIT")
                return result
            except StaleWriteError:
                self._rollback(session)
                raise
            except self._dbapi_error as exc:
                self._rollback(session)
                if STALE_TOKEN in str(exc):
                    optimistic = False  # a stale task in the batch: redo it checked
                    continue
                if _is_event_conflict(exc):
                    raise StaleWriteError("the run changed concurrently") from exc
                if attempt == MAX_TRIES or not self._transient(exc):
                    raise StoreError(f"the store failed: {exc}") from exc
            except BaseException:
                self._rollback(session)
                raise
            time.sleep(min(0.01 * 2**attempt, 1.0) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    def _pg_transaction(
        self, session: Session, fn: Callable[[SqlTransaction], T], worker_id: str, optimistic: bool
    ) -> T:
        txn = SqlTransaction(session, self._dialect, worker_id, 0.0)
        txn.optimistic = optimistic
        result = self._within(fn, txn)
        txn.flush_buffer(commit=True)
        return result

    def _within(self, fn: Callable[[SqlTransaction], T], txn: SqlTransaction) -> T:
        self._local.txn = txn
        try:
            return fn(txn)
        finally:
            self._local.txn = None

    def _session(self) -> Session:
        """This thread's connection (one per thread: SQLite and psycopg connections are not
        shared between threads), opened on first use."""
        session: Session | None = getattr(self._local, "conn", None)
        if session is None:
            connection = self.connector.connect()
            session = Session(connection, self._dialect)
            self._local.conn = session
            with self._lock:
                self._connections.append(connection)
        return session

    def _rollback(self, session: Session) -> None:
        try:
            session.execute("ROLLBACK")
        except Exception:
            self._local.conn = None

    def _transient(self, exc: BaseException) -> bool:
        text = str(exc).lower()
        if self._pg:
            import psycopg

            if isinstance(exc, psycopg.OperationalError):
                self._local.conn = None  # reconnect on the next try
                return True
        return any(marker in text for marker in _TRANSIENT_MARKERS)

    def _rows(self, name: str, **params: Any) -> list[Any]:
        return self.transaction(lambda txn: txn.rows(name, params), readonly=True)

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at; None when it has no schema yet."""
        try:
            rows = self._rows("schema_revision")
        except StoreError:
            return None
        return str(rows[0][0]) if rows else None

    def create_schema(self) -> bool:
        """Create the tables of an empty database; False when it is not empty (upgrade it)."""
        from flowforge.store import ddl

        def create(txn: SqlTransaction) -> bool:
            if txn.rows("table_count", {})[0][0]:
                return False
            for statement in ddl.statements(self.dialect):
                txn.run_sql(statement)
            return True

        try:
            return self.transaction(create)
        except StoreError:
            # another process created it at the same moment
            return self.schema_revision() == ddl.SCHEMA_REVISION

    # -- workers and leases ---------------------------------------------------------------
    def register_worker(self, worker_id: str, hostname: str, pid: int) -> None:
        params = {
            "id": worker_id,
            "hostname": hostname,
            "pid": pid,
            "started_at": self._dialect.time_in(datetime.now(UTC)),
            "now": time.time(),
        }
        self.transaction(lambda txn: txn.write_later("register_worker", params))

    def release_worker_tasks(self, worker_id: str) -> int:
        """Hand back everything a stopping worker holds: its leases expire now, so another
        worker (or ``flowforge resume``) takes them over at once instead of after the lease."""
        return self.transaction(
            lambda txn: txn.execute("release_worker_tasks", {"worker_id": worker_id})
        )

    def deregister_worker(self, worker_id: str) -> None:
        self.transaction(lambda txn: txn.write_later("deregister_worker", {"id": worker_id}))

    def renew_leases(self, worker_id: str, lease: float) -> int:
        """Extend the leases of every task this worker holds; returns how many it holds."""

        def renew(txn: SqlTransaction) -> int:
            params = {"worker_id": worker_id, "lease": lease, "now": time.time()}
            txn.write_later("worker_heartbeat", params)
            return txn.execute("renew_leases", params)

        return self.transaction(renew)

    def next_claimable_in(self, worker_id: str) -> float | None:
        """Seconds until the next task becomes claimable by this worker (by the database's
        clock): an unclaimed task's due time, or the lease expiry of another worker's task."""
        rows = self._rows("next_claimable_in", worker_id=worker_id, now=time.time())
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def listen(self, stop: Callable[[], bool], woken: Callable[[], None]) -> None:
        """Call ``woken`` whenever a transaction leaves work to claim, until ``stop()`` (a
        blocking loop for a thread of its own). PostgreSQL: LISTEN/NOTIFY. SQLite: whenever
        another connection commits (``PRAGMA data_version``, read from shared memory every
        20 ms: no disk read, no lock)."""
        from flowforge.store.transaction import TASKS_CHANNEL

        if not self._pg:
            self._watch_commits(stop, woken)
            return
        while not stop():
            try:
                connection = self.connector.connect()
            except Exception:  # the database is down: the worker's own calls report it
                time.sleep(1.0)
                continue
            try:
                connection.execute(f"LISTEN {TASKS_CHANNEL}")
                while not stop():
                    for _ in connection.notifies(timeout=0.5, stop_after=1):
                        if not stop():
                            woken()
            except Exception:  # a dropped connection: listen again on a new one
                time.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    connection.close()

    def _watch_commits(self, stop: Callable[[], bool], woken: Callable[[], None]) -> None:
        connection = self.connector.connect()
        try:
            version = connection.execute("PRAGMA data_version").fetchone()[0]
            while not stop():
                time.sleep(0.02)
                now = connection.execute("PRAGMA data_version").fetchone()[0]
                if now != version:
                    version = now
                    woken()
        finally:
            connection.close()

    def release_dead_workers_tasks(
        self, run_id: str, hostname: str, alive: Callable[[int], bool]
    ) -> int:
        """Expire the leases that dead workers of this host held on the run's tasks."""

        def release(txn: SqlTransaction) -> int:
            holders = txn.rows("run_task_holders", {"run_id": run_id, "hostname": hostname})
            return sum(
                txn.execute("expire_worker_leases", {"run_id": run_id, "worker_id": worker})
                for worker, pid in holders
                if not alive(int(pid))
            )

        return self.transaction(release)

    # -- runs -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord | None:
        return self.transaction(lambda txn: txn.get_run(run_id), readonly=True)

    def find_run_by_idempotency_key(self, workflow_id: str, key: str) -> RunRecord | None:
        rows = self._rows("run_by_idempotency_key", workflow_id=workflow_id, key=key)
        return self.get_run(rows[0][0]) if rows else None

    def list_runs(
        self, workflow_id: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        rows = self._rows("list_runs", workflow_id=workflow_id, status=status, limit=limit)
        runs = [self.get_run(row[0]) for row in rows]
        return [run for run in runs if run is not None]

    def last_seqs(self, run_ids: Sequence[str]) -> dict[str, int]:
        """Where each run's event log stands: a worker compares it with what it knows."""
        return self.transaction(lambda txn: txn.last_seqs(run_ids), readonly=True)

    def run_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        return self.transaction(lambda txn: txn.run_events(run_id, after_seq), readonly=True)

    def run_logs(self, run_id: str, block_id: str | None = None) -> list[LogLine]:
        """What the run's block attempts logged, in order (of one block, or every block)."""
        return [
            LogLine(r[0], r[1], r[2], r[3], r[4], utc(r[5]))  # type: ignore[arg-type]
            for r in self._rows("run_logs", run_id=run_id, block_id=block_id)
        ]

    def run_attempts(self, run_id: str) -> list[AttemptRecord]:
        d = self._dialect
        return [
            AttemptRecord(
                r[0],
                r[1],
                r[2],
                r[3],
                d.json_out(r[4]),
                d.json_out(r[5]),
                r[6],
                utc(r[7]),
                utc(r[8]),
            )
            for r in self._rows("run_attempts", run_id=run_id)
        ]

    # -- workflows ------------------------------------------------------------------------
    def save_workflow(
        self, workflow_id: str, title: str | None, definition: dict[str, Any], digest: str
    ) -> tuple[int, bool]:
        """Store a definition; a changed one becomes version N+1. Returns (version, created)."""

        def save(txn: SqlTransaction) -> tuple[int, bool]:
            latest = _scalar(txn.rows("workflow_latest", {"id": workflow_id}))
            if latest is not None:
                current = _scalar(
                    txn.rows("workflow_digest", {"id": workflow_id, "version": latest})
                )
                if current == digest:
                    return int(latest), False
            version = int(_scalar(txn.rows("workflow_highest", {"id": workflow_id})) or 0) + 1
            params = {
                "id": workflow_id,
                "version": version,
                "title": title,
                "digest": digest,
                "definition": self._dialect.json_in(definition),
                "created_at": self._dialect.time_in(datetime.now(UTC)),
            }
            txn.write_later("insert_workflow_version", params)
            txn.write_later("insert_workflow" if latest is None else "update_workflow", params)
            return version, True

        return self.transaction(save)

    def get_workflow_version(
        self, workflow_id: str, version: int | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        def get(txn: SqlTransaction) -> tuple[int, dict[str, Any]] | None:
            wanted = version
            if wanted is None:
                wanted = _scalar(txn.rows("workflow_latest", {"id": workflow_id}))
                if wanted is None:
                    return None
            definition = _scalar(
                txn.rows("workflow_definition", {"id": workflow_id, "version": wanted})
            )
            if definition is None:
                return None
            return int(wanted), self._dialect.json_out(definition)

        return self.transaction(get, readonly=True)

    def list_workflows(self) -> list[dict[str, Any]]:
        return [
            {
                "workflow_id": r[0],
                "title": r[1],
                "latest_version": r[2],
                "created_at": utc(r[3]),
                "updated_at": utc(r[4]),
            }
            for r in self._rows("list_workflows")
        ]

    def list_versions(self, workflow_id: str) -> list[dict[str, Any]]:
        return [
            {"version": r[0], "digest": r[1], "created_at": utc(r[2])}
            for r in self._rows("list_versions", id=workflow_id)
        ]

    def delete_workflow(self, workflow_id: str) -> bool:
        """Delete a workflow; its versions stay, so runs pinned to them can still be shown,
        resumed and retried, and re-applying it continues the version numbers."""
        return bool(
            self.transaction(lambda txn: txn.execute("delete_workflow", {"id": workflow_id}))
        )


def _is_event_conflict(exc: BaseException) -> bool:
    """Another writer appended the same (run_id, seq): the run moved on under us. Or it
    created the same child run (a child's id is derived from its parent's block)."""
    text = str(exc)
    return (
        "pk_events" in text
        or "events.run_id, events.seq" in text
        or "pk_runs" in text
        or "UNIQUE constraint failed: runs.id" in text
    )


def _scalar(rows: list[Any]) -> Any:
    return rows[0][0] if rows else None
