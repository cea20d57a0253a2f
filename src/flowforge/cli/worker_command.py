"""``flowforge worker``: a worker process on the shared store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flowforge.cli.console import err
from flowforge.cli.options import DatabaseUrl


def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Blocks this worker runs at once.")
    ] = 16,
    lease: Annotated[
        float,
        typer.Option(help="Seconds before another worker takes over this one's work if it dies."),
    ] = 30.0,
    drain_timeout: Annotated[
        float,
        typer.Option(help="On SIGTERM/SIGINT: seconds to let running blocks finish."),
    ] = 30.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print no event lines.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Run blocks of any run in the store until SIGTERM or SIGINT.

    Any number of workers share a store: on one host over SQLite, on many hosts over
    PostgreSQL. On SIGTERM a worker stops claiming, lets what runs finish (up to
    --drain-timeout), hands back the rest to the other workers, and exits 0.
    """
    import asyncio
    import os
    import signal

    from flowforge.embedded import Engine
    from flowforge.settings import database_url as resolve_url

    url = resolve_url(database_url)
    engine = Engine(url, concurrency=concurrency, lease=lease)
    if not quiet:
        engine.subscribe(_print_event)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        err(f"worker {os.getpid()} on {_shown(url)}: up to {concurrency} blocks at once")
        await engine.work(stop, drain_timeout=drain_timeout)
        err(f"worker {os.getpid()}: stopped")

    try:
        asyncio.run(serve())
    finally:
        engine.close()


def _print_event(event: Any) -> None:
    stamp = event.created_at.strftime("%H:%M:%S") if event.created_at else "--:--:--"
    where = f" {event.block_id}" if event.block_id else ""
    err(f"{stamp} {event.run_id}{where} {event.type.split('.', 1)[1]}")


def _shown(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}{at}{host}"
