"""The hot-path SQL, kept as data (one readable place), for both dialects.

The engine's per-block transactions run these through the DBAPI connection directly: they are
the statements a block costs, and SQLAlchemy's per-statement overhead would be most of that
cost. Placeholders are ``:name``; ``{now}`` is the database's clock in epoch seconds (for
SQLite, the host's clock passed as ``:now``: an SQLite file lives on one host); ``{json:x}``
marks a JSON parameter.
"""

from __future__ import annotations

import re

SQL: dict[str, str] = {
    "get_run": (
        "SELECT id, workflow_id, workflow_version, status, parameters, outputs, failure_reason,"
        " idempotency_key, created_at, started_at, finished_at FROM runs WHERE id = :run_id"
    ),
    "run_events": (
        "SELECT run_id, seq, type, block_id, data, created_at FROM events"
        " WHERE run_id = :run_id AND seq > :after ORDER BY seq"
    ),
    "run_tasks": (
        "SELECT id, run_id, kind, block_id, attempt, token FROM tasks WHERE run_id = :run_id"
    ),
    "insert_run": (
        "INSERT INTO runs (id, workflow_id, workflow_version, status, parameters,"
        " idempotency_key, created_at)"
        " VALUES (:id, :workflow_id, :workflow_version, 'queued', {json:parameters},"
        " :idempotency_key, :created_at)"
    ),
    "insert_log": (
        "INSERT INTO block_logs (run_id, block_id, attempt, line, level, message, created_at)"
        " VALUES (:run_id, :block_id, :attempt, :line, :level, :message, :created_at)"
    ),
    "run_logs": (
        "SELECT block_id, attempt, line, level, message, created_at FROM block_logs"
        " WHERE run_id = :run_id AND ({text:block_id} IS NULL OR block_id = {text:block_id})"
        " ORDER BY id"
    ),
    "insert_event": (
        "INSERT INTO events (run_id, seq, type, block_id, data, created_at)"
        " VALUES (:run_id, :seq, :type, :block_id, {json:data}, :created_at)"
    ),
    "insert_task": (
        "INSERT INTO tasks (id, run_id, block_id, attempt, kind, due_at, worker_id,"
        " lease_expires_at, token)"
        " VALUES (:id, :run_id, :block_id, :attempt, :kind,"
        " coalesce({float:due_at}, {now} + :delay), {text:worker_id},"
        " CASE WHEN :worker_id IS NULL THEN NULL ELSE {now} + :lease END, 1)"
    ),
    "take_lease": (
        "INSERT INTO tasks (id, run_id, block_id, attempt, kind, due_at, worker_id,"
        " lease_expires_at, token) VALUES (:id, :run_id, NULL, 0, 'lease', {now}, :worker_id,"
        " {now} + :lease, 1) ON CONFLICT (id) DO UPDATE SET worker_id = excluded.worker_id,"
        " lease_expires_at = excluded.lease_expires_at, token = tasks.token + 1"
    ),
    "delete_task": "DELETE FROM tasks WHERE id = :id AND token = :token",
    # PostgreSQL only: the fencing check of a buffered transaction (see finish_tasks);
    # {pairs} is a list of (id, token) literals
    "delete_tasks_fenced": (
        "WITH gone AS (DELETE FROM tasks WHERE (id, token) IN ({pairs}) RETURNING 1)"
        " SELECT CAST(CASE WHEN count(*) = :n THEN '0' ELSE '"
        + "stale fencing token"
        + "' END AS INT) FROM gone"
    ),
    "delete_run_tasks": "DELETE FROM tasks WHERE run_id = :run_id",
    "delete_task_by_id": "DELETE FROM tasks WHERE run_id = :run_id AND id = :id",
    "insert_attempt": (
        "INSERT INTO block_runs (run_id, block_id, attempt, status, output, error, worker_id,"
        " started_at, finished_at) VALUES (:run_id, :block_id, :attempt, :status,"
        " {json:output}, {json:error}, :worker_id, :started_at, :finished_at)"
    ),
    # -- workers and leases
    "register_worker": (
        "INSERT INTO workers (id, hostname, pid, started_at, heartbeat_at)"
        " VALUES (:id, :hostname, :pid, :started_at, {now})"
    ),
    "deregister_worker": "DELETE FROM workers WHERE id = :id",
    "renew_leases": (
        "UPDATE tasks SET lease_expires_at = {now} + :lease"
        " WHERE worker_id = :worker_id AND lease_expires_at >= {now}"
    ),
    "worker_heartbeat": "UPDATE workers SET heartbeat_at = {now} WHERE id = :worker_id",
    "run_task_holders": (
        "SELECT DISTINCT w.id, w.pid FROM workers w JOIN tasks t ON t.worker_id = w.id"
        " WHERE t.run_id = :run_id AND w.hostname = :hostname"
    ),
    "expire_worker_leases": (
        "UPDATE tasks SET lease_expires_at = 0 WHERE run_id = :run_id AND worker_id = :worker_id"
    ),
    # when the next task becomes claimable by this worker: due, or its holder's lease expired
    "next_claimable": (
        "SELECT min(CASE WHEN worker_id IS NULL THEN due_at"
        " ELSE greatest_of_two END) FROM (SELECT worker_id, due_at,"
        " CASE WHEN lease_expires_at > due_at THEN lease_expires_at ELSE due_at END"
        " AS greatest_of_two FROM tasks"
        " WHERE worker_id IS NULL OR worker_id <> :worker_id) AS claimable"
    ),
    # the same as seconds from the database's now (clocks of other hosts may differ)
    "next_claimable_in": "SELECT ({next_claimable}) - {now}",
    "release_worker_tasks": "UPDATE tasks SET lease_expires_at = 0 WHERE worker_id = :worker_id",
    # -- runs (reads)
    "run_by_idempotency_key": (
        "SELECT id FROM runs WHERE workflow_id = :workflow_id AND idempotency_key = :key"
    ),
    "list_runs": (
        "SELECT id FROM runs WHERE ({text:workflow_id} IS NULL OR workflow_id = {text:workflow_id})"
        " AND ({text:status} IS NULL OR status = {text:status})"
        " ORDER BY created_at DESC, id LIMIT :limit"
    ),
    "run_attempts": (
        "SELECT run_id, block_id, attempt, status, output, error, worker_id, started_at,"
        " finished_at FROM block_runs WHERE run_id = :run_id ORDER BY block_id, attempt"
    ),
    # -- workflows
    "workflow_latest": "SELECT latest_version FROM workflows WHERE id = :id",
    "workflow_highest": "SELECT max(version) FROM workflow_versions WHERE workflow_id = :id",
    "workflow_digest": (
        "SELECT digest FROM workflow_versions WHERE workflow_id = :id AND version = :version"
    ),
    "workflow_definition": (
        "SELECT definition FROM workflow_versions WHERE workflow_id = :id AND version = :version"
    ),
    "insert_workflow_version": (
        "INSERT INTO workflow_versions (workflow_id, version, definition, digest, created_at)"
        " VALUES (:id, :version, {json:definition}, :digest, :created_at)"
    ),
    "insert_workflow": (
        "INSERT INTO workflows (id, latest_version, title, created_at, updated_at)"
        " VALUES (:id, :version, :title, :created_at, :created_at)"
    ),
    "update_workflow": (
        "UPDATE workflows SET latest_version = :version, title = :title, updated_at = :created_at"
        " WHERE id = :id"
    ),
    "list_workflows": (
        "SELECT id, title, latest_version, created_at, updated_at FROM workflows ORDER BY id"
    ),
    "list_versions": (
        "SELECT version, digest, created_at FROM workflow_versions WHERE workflow_id = :id"
        " ORDER BY version"
    ),
    "delete_workflow": "DELETE FROM workflows WHERE id = :id",
    "schema_revision": "SELECT version_num FROM alembic_version",
    "table_count_sqlite": (
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ),
    "table_count_postgresql": (
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
    ),
    "claim_tasks_sqlite": (
        "UPDATE tasks SET worker_id = :worker_id, lease_expires_at = {now} + :lease,"
        " token = token + 1"
        " WHERE id IN (SELECT id FROM tasks WHERE due_at <= {now}"
        " AND (worker_id IS NULL OR (lease_expires_at < {now} AND worker_id <> :worker_id))"
        " {run_filter} ORDER BY due_at LIMIT :limit)"
        " RETURNING id, run_id, kind, block_id, attempt, token"
    ),
    "claim_tasks_postgresql": (
        "UPDATE tasks SET worker_id = :worker_id, lease_expires_at = {now} + :lease,"
        " token = token + 1"
        " WHERE id IN (SELECT id FROM tasks WHERE due_at <= {now}"
        " AND (worker_id IS NULL OR (lease_expires_at < {now} AND worker_id <> :worker_id))"
        " {run_filter} ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
        " RETURNING id, run_id, kind, block_id, attempt, token"
    ),
}

_PLACEHOLDER = re.compile(r"(?<!:):([a-z_]+)")
_TYPED = re.compile(r"\{(json|float|text):([a-z_]+)\}")
_PG_TYPES = {"json": "JSONB", "float": "DOUBLE PRECISION", "text": "TEXT"}


def render(name: str, dialect: str, run_filter: str = "") -> str:
    """The statement ``name`` in the DBAPI paramstyle of ``dialect``.

    ``{json:x}``, ``{float:x}`` and ``{text:x}`` are parameters PostgreSQL must be told the type
    of (a NULL or a JSON text); SQLite takes them as they are.
    """
    pg = dialect == "postgresql"
    text = SQL[name].replace("{run_filter}", run_filter)
    text = text.replace("{next_claimable}", SQL["next_claimable"])
    text = text.replace("{now}", "extract(epoch from now())" if pg else ":now")
    if not pg:
        return _TYPED.sub(r":\2", text)
    text = _TYPED.sub(lambda m: f"CAST(:{m.group(2)} AS {_PG_TYPES[m.group(1)]})", text)
    return _PLACEHOLDER.sub(r"%(\1)s", text)
