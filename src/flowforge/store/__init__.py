"""WHERE state lives: every SQL statement of flowforge is in this package."""

from __future__ import annotations

from flowforge.store.sql_store import SqlStore

__all__ = ["SqlStore", "open_store"]


def open_store(
    url: str, *, sqlite_synchronous: str | None = None, migrate: bool = True
) -> SqlStore:
    """Open the store at ``url``, creating or upgrading its schema first when ``migrate``.

    A current schema costs one query; a new database gets its tables from plain SQL; SQLAlchemy
    and Alembic are imported only to upgrade an older schema."""
    store = SqlStore(url, sqlite_synchronous=sqlite_synchronous)
    if migrate:
        from flowforge.store.revision import SCHEMA_REVISION

        if store.schema_revision() != SCHEMA_REVISION and not store.create_schema():
            from flowforge.store.migrate import ensure_schema

            ensure_schema(store.engine)
    return store
