"""Raw DBAPI connections, configured for flowforge, without importing SQLAlchemy.

SQLite done right: WAL, a busy timeout, ``BEGIN IMMEDIATE`` for writes (issued by the store),
and a ``synchronous`` level chosen by ``FLOWFORGE_SQLITE_SYNCHRONOUS`` (default NORMAL: survives
a process crash; FULL: also a power loss). PostgreSQL through psycopg 3, in autocommit mode: the
store spells its transactions out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from flowforge.errors import ConfigurationError

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class Connector:
    """Knows how to open connections to one database URL."""

    def __init__(self, url: str, *, sqlite_synchronous: str | None = None) -> None:
        self.url = url
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ConfigurationError(
                f"not a database URL: {url!r} (use sqlite:///path/file.db or postgresql://…)"
            )
        driver = scheme.split("+", 1)[0]
        if driver == "sqlite":
            self.dialect = "sqlite"
            path = unquote(rest[1:] if rest.startswith("/") else rest)
            if path in ("", ":memory:"):
                raise ConfigurationError(
                    "the SQLite store needs a file: sqlite:///path/to/flowforge.db"
                )
            self.path = Path(path).expanduser()
            sync = (
                sqlite_synchronous or os.environ.get("FLOWFORGE_SQLITE_SYNCHRONOUS") or "NORMAL"
            ).upper()
            if sync not in SQLITE_SYNCHRONOUS:
                raise ConfigurationError(
                    f"FLOWFORGE_SQLITE_SYNCHRONOUS={sync!r}: use one of "
                    + ", ".join(SQLITE_SYNCHRONOUS)
                )
            self.synchronous = sync
            self.sqlalchemy_url = f"sqlite:///{self.path}"
        elif driver in ("postgresql", "postgres"):
            self.dialect = "postgresql"
            self.libpq_url = f"postgresql://{rest}"
            self.sqlalchemy_url = f"postgresql+psycopg://{rest}"
        else:
            raise ConfigurationError(
                f"unsupported database {driver!r} in {url!r}: use sqlite:/// or postgresql://"
            )

    @property
    def dbapi_error(self) -> type[BaseException]:
        if self.dialect == "postgresql":
            import psycopg

            return psycopg.Error
        import sqlite3

        return sqlite3.Error

    def connect(self) -> Any:
        if self.dialect == "postgresql":
            import psycopg

            try:
                return psycopg.connect(self.libpq_url, autocommit=True)
            except psycopg.OperationalError as exc:
                raise ConfigurationError(f"cannot connect to {self.url}: {exc}") from exc
        import sqlite3

        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn
