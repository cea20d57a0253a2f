"""``flowforge db``: the store's schema."""

from __future__ import annotations

import typer

from flowforge.cli.console import out
from flowforge.cli.options import DatabaseUrl

app = typer.Typer(help="Manage the database.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply schema migrations (a no-op when the schema is current)."""
    from flowforge.settings import database_url as resolve_url
    from flowforge.store.connection import create_engine
    from flowforge.store.migrate import current_revision, upgrade

    engine = create_engine(resolve_url(database_url))
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    shown = engine.url.render_as_string(hide_password=True)
    if before == after:
        out(f"{shown}: schema up to date (revision {after})")
    else:
        out(f"{shown}: schema upgraded from {before or 'empty'} to revision {after}")
