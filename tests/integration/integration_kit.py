"""Helpers of the integration suite: polling with a deadline, event lookups, timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import flowforge
from flowforge import Event


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


async def async_wait_until(
    predicate: Callable[[], object], timeout: float = 5.0, what: str = ""
) -> None:
    """Like ``wait_until``, yielding to the event loop between polls."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def types_of(events: list[Event], block_id: str | None = None) -> list[str]:
    """The event types, of one block when ``block_id`` is given."""
    return [e.type for e in events if block_id is None or e.block_id == block_id]


def has_event(
    engine: flowforge.Engine, run_id: str, kind: str, block_id: str | None = None
) -> bool:
    return any(
        e.type == kind and (block_id is None or e.block_id == block_id)
        for e in engine.events(run_id)
    )


@dataclass
class Interval:
    """When a block's function ran, in ``time.monotonic`` seconds."""

    start: float
    end: float

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


def store_bytes(engine: flowforge.Engine, store_url: str) -> bytes:
    """Everything the store holds, to look for what must not be there (a secret): every byte
    of the SQLite database and WAL files (the engine is closed first), or the text of every
    row of every PostgreSQL table, as UTF-8."""
    from pathlib import Path

    import sqlalchemy as sa

    if store_url.startswith("sqlite"):
        path = Path(store_url.removeprefix("sqlite:///"))
        engine.close()
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    url = store_url.replace("postgresql://", "postgresql+psycopg://")
    with sa.create_engine(url).connect() as conn:
        tables = list(
            conn.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
        return "\n".join(
            str(row[0])
            for table in tables
            for row in conn.execute(sa.text(f'SELECT t::text FROM "{table}" t'))
        ).encode()
