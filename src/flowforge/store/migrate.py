"""Schema migrations: one Alembic history for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: sa.Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: sa.Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; a no-op when the schema is current."""
    command.upgrade(alembic_config(engine), revision)


def ensure_schema(engine: sa.Engine) -> None:
    """Create the schema of an empty database, or upgrade an older one.

    An empty database gets the current tables at once and is stamped with the head revision
    (what Alembic recommends for new databases); an older one replays the migrations."""
    current = current_revision(engine)
    if current == head_revision(engine):
        return
    if current is None and not sa.inspect(engine).get_table_names():
        from flowforge.store.schema import metadata

        metadata.create_all(engine)
        command.stamp(alembic_config(engine), "head")
        return
    upgrade(engine)
