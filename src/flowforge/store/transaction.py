"""The verbs of one engine transaction (``engine.ports.Transaction``) on a DBAPI connection.

These statements are the per-block cost of the engine, so they go to the driver directly
(``queries.py``); the rest of the store uses SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flowforge.engine.ports import StaleWriteError
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
from flowforge.store import queries

TASKS_CHANNEL = "flowforge_tasks"
"""PostgreSQL channel notified when a transaction leaves work for any worker to claim."""

_RUN_FIELDS = ("status", "started_at", "finished_at", "outputs", "failure_reason")
_JSON_FIELDS = frozenset({"outputs"})


def utc(value: datetime | str | None) -> datetime | None:
    """Timestamps come back naive (SQLite, as text): they are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Dialect:
    """How values cross the DBAPI boundary for one database."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pg = name == "postgresql"
        self.sql: dict[str, str] = {key: queries.render(key, name) for key in queries.SQL}
        self.sql["claim_tasks_for_run"] = queries.render(
            f"claim_tasks_{name}", name, "AND run_id = :run_id"
        )
        self.sql["claim_tasks"] = self.sql[f"claim_tasks_{name}"]
        # what a worker with no free slot still claims: a dead worker's run lease, a timer,
        # a deadline, a queued run (none of them runs a block)
        self.sql["claim_control_tasks"] = queries.render(
            f"claim_tasks_{name}", name, "AND kind <> 'block'"
        )
        self.sql["table_count"] = self.sql[f"table_count_{name}"]
        self.is_integrity_error: type[BaseException] = _integrity_error(name)

    def json_in(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    def json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) and not self.pg else value

    def time_in(self, value: datetime | None) -> Any:
        if value is None or self.pg:
            return value
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _integrity_error(name: str) -> type[BaseException]:
    if name == "postgresql":
        import psycopg

        return psycopg.IntegrityError
    import sqlite3

    return sqlite3.IntegrityError


class Session:
    """One connection and what its transactions reuse: cursors and the literal renderer."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection
        self.cursor = connection.cursor()
        self.client: Any = None
        self.literals: Any = None
        if dialect.pg:
            import psycopg

            from flowforge.store.literals import Literals

            self.client = psycopg.ClientCursor(connection)
            self.literals = Literals(psycopg.pq.Escaping(connection.pgconn).escape_literal)

    def execute(self, sql: str) -> None:
        self.connection.execute(sql)


class SqlTransaction:
    """One open transaction on a DBAPI connection."""

    def __init__(self, session: Session, dialect: Dialect, worker_id: str, now: float) -> None:
        self.cursor = session.cursor
        self.optimistic = False
        self._notify = False
        self._client = session.client
        self._literals = session.literals
        # PostgreSQL: the connection is in autocommit mode and the transaction is spelled out;
        # writes are rendered with their values and sent together with COMMIT, so a block
        # costs one round trip unless the transaction must read something first
        self._buffer: list[str] | None = ["BEGIN"] if dialect.pg else None
        self.dialect = dialect
        self.worker_id = worker_id
        self.now = now
        """The host clock for SQLite; PostgreSQL statements read the server's clock instead."""

    def _run(self, name: str, params: dict[str, Any]) -> Any:
        if self._buffer is not None:
            self.flush_buffer()
        self.cursor.execute(self.dialect.sql[name], params)
        return self.cursor

    def _write(self, name: str, params: dict[str, Any]) -> None:
        """A statement whose result nobody reads: buffered on PostgreSQL."""
        if self._buffer is not None:
            self._buffer.append(self._literals.render(self.dialect.sql[name], params))
        else:
            self.cursor.execute(self.dialect.sql[name], params)

    def _many(self, name: str, rows: list[dict[str, Any]]) -> None:
        if self._buffer is not None:
            sql = self.dialect.sql[name]
            head, values, plain = sql.partition(" VALUES ")
            if len(rows) > 1 and values and "ON CONFLICT" not in plain:
                # one multi-row INSERT: one statement for the server to parse and plan
                tuples = ", ".join(self._literals.render(plain, row) for row in rows)
                self._buffer.append(f"{head} VALUES {tuples}")
            else:
                self._buffer.extend(self._literals.render(sql, row) for row in rows)
        elif len(rows) == 1:
            self.cursor.execute(self.dialect.sql[name], rows[0])
        elif rows:
            self.cursor.executemany(self.dialect.sql[name], rows)

    def flush_buffer(self, commit: bool = False) -> None:
        """Send the buffered statements (and COMMIT) to PostgreSQL in one round trip."""
        assert self._buffer is not None
        if commit:
            if self._notify:
                # delivered at commit: listening workers claim the new work at once
                self._buffer.append(f"NOTIFY {TASKS_CHANNEL}")
            self._buffer.append("COMMIT")
        if self._buffer:
            self._client.execute(";\n".join(self._buffer))
        self._buffer = [] if not commit else None

    def rows(self, name: str, params: dict[str, Any]) -> list[Any]:
        """Run a named query and return its rows (store-internal)."""
        return list(self._run(name, params).fetchall())

    def run_sql(self, statement: str) -> None:
        """Run a parameterless statement now (schema creation)."""
        if self._buffer is not None:
            self.flush_buffer()
        self.cursor.execute(statement)

    def execute(self, name: str, params: dict[str, Any]) -> int:
        """Run a named statement now and return its row count (store-internal)."""
        return int(self._run(name, params).rowcount)

    def write_later(self, name: str, params: dict[str, Any]) -> None:
        """Run a named statement whose result nobody reads (buffered on PostgreSQL)."""
        self._write(name, params)

    def last_seqs(self, run_ids: Sequence[str]) -> dict[str, int]:
        """The last event sequence number of each run (runs without events are left out)."""
        if not run_ids:
            return {}
        if self.dialect.pg:
            sql = "SELECT run_id, max(seq) FROM events WHERE run_id = ANY(%(ids)s) GROUP BY run_id"
            params: Any = {"ids": list(run_ids)}
        else:
            marks = ", ".join("?" for _ in run_ids)
            sql = f"SELECT run_id, max(seq) FROM events WHERE run_id IN ({marks}) GROUP BY run_id"
            params = list(run_ids)
        if self._buffer is not None:
            self.flush_buffer()
        self.cursor.execute(sql, params)
        return {run_id: int(seq) for run_id, seq in self.cursor.fetchall()}

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._run("get_run", {"run_id": run_id}).fetchone()
        if row is None:
            return None
        d = self.dialect
        return RunRecord(
            run_id=row[0],
            workflow_id=row[1],
            workflow_version=row[2],
            status=row[3],
            parameters=d.json_out(row[4]) or {},
            outputs=d.json_out(row[5]),
            failure_reason=row[6],
            idempotency_key=row[7],
            created_at=utc(row[8]),  # type: ignore[arg-type]
            started_at=utc(row[9]),
            finished_at=utc(row[10]),
        )

    def run_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        rows = self._run("run_events", {"run_id": run_id, "after": after_seq}).fetchall()
        d = self.dialect
        return [Event(r[0], r[1], r[2], r[3], d.json_out(r[4]) or {}, utc(r[5])) for r in rows]

    def run_tasks(self, run_id: str) -> list[ClaimedTask]:
        rows = self._run("run_tasks", {"run_id": run_id}).fetchall()
        return [ClaimedTask(*row) for row in rows]

    def latest_version(self, workflow_id: str) -> int | None:
        row = self._run("workflow_latest", {"id": workflow_id}).fetchone()
        return None if row is None else int(row[0])

    def insert_run(self, run: NewRun) -> None:
        d = self.dialect
        self._write(
            "insert_run",
            {
                "id": run.run_id,
                "workflow_id": run.workflow_id,
                "workflow_version": run.workflow_version,
                "parameters": d.json_in(run.parameters),
                "idempotency_key": run.idempotency_key,
                "created_at": d.time_in(run.created_at),
            },
        )

    def update_run(self, update: RunUpdate) -> None:
        fields = [name for name in _RUN_FIELDS if name in update.fields]
        d = self.dialect
        params: dict[str, Any] = {"run_id": update.run_id}
        sets = []
        for name in fields:
            value = getattr(update, name)
            if name in _JSON_FIELDS:
                value = d.json_in(value)
            elif isinstance(value, datetime) or name.endswith("_at"):
                value = d.time_in(value)
            params[name] = value
            cast = "CAST(%(outputs)s AS JSONB)" if d.pg and name in _JSON_FIELDS else None
            placeholder = (f"%({name})s" if d.pg else f":{name}") if cast is None else cast
            sets.append(f"{name} = {placeholder}")
        where = "%(run_id)s" if d.pg else ":run_id"
        sql = f"UPDATE runs SET {', '.join(sets)} WHERE id = {where}"
        if self._buffer is not None:
            self._buffer.append(self._literals.render(sql, params))
        else:
            self.cursor.execute(sql, params)

    def append_events(self, events: Sequence[Event]) -> None:
        d = self.dialect
        rows = [
            {
                "run_id": e.run_id,
                "seq": e.seq,
                "type": e.type,
                "block_id": e.block_id,
                "data": d.json_in(e.data),
                "created_at": d.time_in(e.created_at),
            }
            for e in events
        ]
        try:
            self._many("insert_event", rows)
        except d.is_integrity_error as exc:
            raise StaleWriteError(f"run {events[0].run_id} changed concurrently") from exc

    def insert_tasks(self, tasks: Sequence[NewTask], lease: float) -> list[ClaimedTask]:
        if any(not task.claim for task in tasks):
            self._notify = True
        rows = [
            {
                "id": task.task_id,
                "run_id": task.run_id,
                "block_id": task.block_id,
                "attempt": task.attempt,
                "kind": task.kind,
                "due_at": task.due_at,
                "delay": task.delay,
                "worker_id": self.worker_id if task.claim else None,
                "lease": lease,
                "now": self.now,
            }
            for task in tasks
        ]
        self._many("insert_task", rows)
        return [
            ClaimedTask(task.task_id, task.run_id, task.kind, task.block_id, task.attempt, 1)
            for task in tasks
            if task.claim
        ]

    def take_leases(self, leases: Sequence[NewTask], lease: float) -> None:
        rows = [
            {
                "id": task.task_id,
                "run_id": task.run_id,
                "worker_id": self.worker_id,
                "lease": lease,
                "now": self.now,
            }
            for task in leases
        ]
        self._many("take_lease", rows)

    def claim_tasks(
        self, limit: int, lease: float, run_id: str | None = None, control_only: bool = False
    ) -> list[ClaimedTask]:
        """Claim up to ``limit`` due tasks, oldest first; ``control_only``: no block tasks."""
        if limit <= 0:
            return []
        name = "claim_tasks" if run_id is None else "claim_tasks_for_run"
        if control_only and run_id is None:
            name = "claim_control_tasks"
        params = {
            "worker_id": self.worker_id,
            "lease": lease,
            "now": self.now,
            "limit": limit,
            "run_id": run_id,
        }
        rows = self._run(name, params).fetchall()
        return sorted((ClaimedTask(*row) for row in rows), key=lambda task: task.task_id)

    def finish_tasks(self, tasks: Sequence[ClaimedTask]) -> list[bool]:
        if self.optimistic and tasks:
            # PostgreSQL pipeline: assume this worker still holds every task; if one is stale
            # the statement fails, the whole transaction with it, and the store reruns it
            # without optimism (one round trip per block instead of two).
            literal = self._literals.literal
            pairs = ", ".join(f"({literal(t.task_id)}, {t.token})" for t in tasks)
            sql = self.dialect.sql["delete_tasks_fenced"].replace("{pairs}", pairs)
            assert self._buffer is not None
            self._buffer.append(self._literals.render(sql, {"n": len(tasks)}))
            return [True] * len(tasks)
        held = []
        for task in tasks:
            self._run("delete_task", {"id": task.task_id, "token": task.token})
            held.append(self.cursor.rowcount == 1)
        return held

    def delete_run_tasks(self, run_id: str, task_ids: Sequence[str] | None = None) -> None:
        if task_ids is None:
            self._write("delete_run_tasks", {"run_id": run_id})
        else:
            self._many("delete_task_by_id", [{"run_id": run_id, "id": i} for i in task_ids])

    def write_logs(self, run_id: str, lines: Sequence[LogLine]) -> None:
        d = self.dialect
        self._many(
            "insert_log",
            [
                {
                    "run_id": run_id,
                    "block_id": x.block_id,
                    "attempt": x.attempt,
                    "line": x.line,
                    "level": x.level,
                    "message": x.message,
                    "created_at": d.time_in(x.created_at),
                }
                for x in lines
            ],
        )

    def write_attempts(self, attempts: Sequence[AttemptWrite]) -> None:
        d = self.dialect
        self._many(
            "insert_attempt",
            [
                {
                    "run_id": a.run_id,
                    "block_id": a.block_id,
                    "attempt": a.attempt,
                    "status": a.status,
                    "output": d.json_in(a.output),
                    "error": d.json_in(a.error),
                    "worker_id": a.worker_id,
                    "started_at": d.time_in(a.started_at),
                    "finished_at": d.time_in(a.finished_at),
                }
                for a in attempts
            ],
        )
