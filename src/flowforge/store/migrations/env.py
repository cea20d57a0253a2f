"""Alembic environment: the engine comes from flowforge (``config.attributes['engine']``)."""

from __future__ import annotations

from alembic import context

from flowforge.store.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line: take the URL from flowforge's settings
    from flowforge.settings import database_url
    from flowforge.store.connection import create_engine

    engine = create_engine(database_url())

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
