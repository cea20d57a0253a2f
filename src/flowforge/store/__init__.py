"""WHERE state lives: the only package that imports SQLAlchemy."""

from __future__ import annotations

import sqlalchemy as sa

from flowforge.store.schema import SCHEMA_REVISION
from flowforge.store.sql_store import SqlStore

__all__ = ["SqlStore", "open_store"]


def open_store(url: str, *, sqlite_synchronous: str | None = None, migrate: bool = True) -> SqlStore:
    """Open the store at ``url``, bringing its schema up to date first when ``migrate``."""
    store = SqlStore(url, sqlite_synchronous=sqlite_synchronous)
    if migrate and _revision(store.engine) != SCHEMA_REVISION:
        from flowforge.store.migrate import upgrade  # Alembic is imported only when needed

        upgrade(store.engine)
    return store


def _revision(engine: sa.Engine) -> str | None:
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(flowforge_readonly=True)
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except sa.exc.DBAPIError:
        return None
