"""Where flowforge keeps its state, from the environment: ``FLOWFORGE_DATABASE_URL``,
``FLOWFORGE_HOME`` (default ``~/.flowforge``) and ``FLOWFORGE_SQLITE_SYNCHRONOUS``."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("FLOWFORGE_HOME", "~/.flowforge")).expanduser()


def database_url(explicit: str | None = None) -> str:
    """The store's URL: the explicit one, the environment's, or an SQLite file under home."""
    if explicit:
        return explicit
    env = os.environ.get("FLOWFORGE_DATABASE_URL")
    if env:
        return env
    return f"sqlite:///{home() / 'flowforge.db'}"
