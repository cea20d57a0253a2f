"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL of the store (sqlite:///… or postgresql://…). "
        "Default: $FLOWFORGE_DATABASE_URL, else an SQLite file under $FLOWFORGE_HOME.",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (a listing is a JSON array).")]
