"""The tables, as SQLAlchemy Core metadata: one schema for SQLite and PostgreSQL.

Human timestamps are timezone-aware ``DateTime`` columns; lease expiries and due times are
epoch seconds (``Float``) computed from the database's clock, so workers never compare their
own clocks.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)

JSONValue = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

workflow_versions = sa.Table(
    "workflow_versions",
    metadata,
    sa.Column("workflow_id", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("definition", JSONValue, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workflow_id", sa.String(200), nullable=False),
    sa.Column("workflow_version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("parameters", JSONValue, nullable=False),
    sa.Column("outputs", JSONValue),
    sa.Column("failure_reason", sa.Text),
    sa.Column("idempotency_key", sa.String(200)),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp),
    sa.Column("finished_at", Timestamp),
    sa.Index("ix_runs_workflow_id_created_at", "workflow_id", "created_at"),
    sa.Index("ix_runs_status", "status"),
    sa.UniqueConstraint("workflow_id", "idempotency_key"),
)

block_runs = sa.Table(
    "block_runs",
    metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("block_id", sa.String(200), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("output", JSONValue),
    sa.Column("error", JSONValue),
    sa.Column("worker_id", sa.String(80)),
    sa.Column("started_at", Timestamp),
    sa.Column("finished_at", Timestamp),
)

events = sa.Table(
    "events",
    metadata,
    # (run_id, seq) is the run's optimistic lock: two writers of one run cannot both append
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("block_id", sa.String(200)),
    sa.Column("data", JSONValue),
    sa.Column("created_at", Timestamp, nullable=False),
)

signals = sa.Table(
    "signals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("payload", JSONValue),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("consumed_by", sa.String(200)),
    sa.Index("ix_signals_run_id_name", "run_id", "name"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(300), primary_key=True),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("block_id", sa.String(200)),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("worker_id", sa.String(80)),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("token", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_tasks_due_at", "due_at"),
    sa.Index("ix_tasks_run_id", "run_id"),
    sa.Index("ix_tasks_worker_id", "worker_id"),
)

block_logs = sa.Table(
    "block_logs",
    metadata,
    # what a block attempt logged (ctx.logger; a code or command block's output), secrets redacted
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("block_id", sa.String(200), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("level", sa.String(10), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_block_logs_run_id_block_id_attempt", "run_id", "block_id", "attempt"),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("heartbeat_at", sa.Float, nullable=False),
)
