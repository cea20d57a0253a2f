"""Opening a database: SQLite done right (WAL, BEGIN IMMEDIATE, busy timeout) or PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from flowforge.errors import ConfigurationError

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def create_engine(url: str, *, sqlite_synchronous: str | None = None) -> Engine:
    """A SQLAlchemy engine configured for flowforge's access pattern."""
    url = normalize_url(url)
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"not a database URL: {url!r} ({exc})") from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, sqlite_synchronous)
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise ConfigurationError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://"
    )


def _sqlite_engine(url: sa.engine.URL, synchronous: str | None) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:"):
        raise ConfigurationError("the SQLite store needs a file: sqlite:///path/to/flowforge.db")
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    sync = (synchronous or os.environ.get("FLOWFORGE_SQLITE_SYNCHRONOUS", "NORMAL")).upper()
    if sync not in SQLITE_SYNCHRONOUS:
        raise ConfigurationError(
            f"FLOWFORGE_SQLITE_SYNCHRONOUS={sync!r}: use one of {', '.join(SQLITE_SYNCHRONOUS)}"
        )
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sync}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # writers take the write lock up front: no deadlock-prone lock upgrade, and the
        # busy timeout applies, so users never see "database is locked"
        if conn.get_execution_options().get("flowforge_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
