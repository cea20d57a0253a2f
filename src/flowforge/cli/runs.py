"""``flowforge runs``: list and inspect runs on the store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, cast

import typer

from flowforge.cli.console import dumps, duration, out, print_json, short_time, table
from flowforge.cli.options import DatabaseUrl, Json

app = typer.Typer(help="Inspect runs.", no_args_is_help=True)
RunId = Annotated[str, typer.Argument(metavar="RUN_ID")]


@app.command("list")
def list_(
    workflow: Annotated[str | None, typer.Option("--workflow", metavar="ID")] = None,
    status: Annotated[str | None, typer.Option("--status", metavar="STATUS")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List runs, newest first."""
    from flowforge.embedded import Engine

    with Engine(database_url) as engine:
        runs = engine.list(workflow, status, limit)
    if json_output:
        print_json([r.to_dict() for r in runs])
        return
    table(
        ["RUN", "WORKFLOW", "STATUS", "CREATED", "DURATION"],
        [
            [
                r.run_id,
                f"{r.workflow_id} v{r.workflow_version}",
                r.status,
                short_time(r.created_at),
                duration(r.started_at, r.finished_at),
            ]
            for r in runs
        ],
    )


@app.command("show")
def show(run_id: RunId, json_output: Json = False, database_url: DatabaseUrl = None) -> None:
    """Show a run: status, parameters, outputs and every block."""
    from flowforge.embedded import Engine

    with Engine(database_url) as engine:
        run = engine.get(run_id)
    if json_output:
        print_json(run.to_dict())
        return
    out(f"run       {run.run_id}")
    out(f"workflow  {run.workflow_id} v{run.workflow_version}")
    out(f"status    {run.status}" + (f" ({run.failure_reason})" if run.failure_reason else ""))
    out(f"created   {short_time(run.created_at)}")
    out(f"duration  {duration(run.started_at, run.finished_at)}")
    out(f"params    {dumps(run.parameters, indent=None)}")
    out(f"outputs   {dumps(run.outputs, indent=None)}")
    out()
    table(
        ["BLOCK", "TYPE", "STATUS", "ATTEMPTS", "DURATION", "ERROR"],
        [
            [
                b.block_id,
                b.type,
                b.status,
                b.attempts,
                duration(b.started_at, b.finished_at),
                _error(b.error),
            ]
            for b in run.blocks
        ],
    )


@app.command("events")
def events(run_id: RunId, json_output: Json = False, database_url: DatabaseUrl = None) -> None:
    """Print a run's events in order."""
    from flowforge.embedded import Engine

    with Engine(database_url) as engine:
        # Engine.list shadows the builtin in Engine's annotations: mypy misreads the type
        found = cast("Sequence[Any]", engine.events(run_id))
    if json_output:
        print_json(
            [
                {
                    "run_id": e.run_id,
                    "seq": e.seq,
                    "type": e.type,
                    "block_id": e.block_id,
                    "data": e.data,
                    "created_at": e.created_at,
                }
                for e in found
            ]
        )
        return
    table(
        ["SEQ", "TIME", "TYPE", "BLOCK", "DATA"],
        [
            [
                e.seq,
                short_time(e.created_at),
                e.type,
                e.block_id or "",
                _clip(dumps(e.data, indent=None)) if e.data else "",
            ]
            for e in found
        ],
    )


def _error(error: dict[str, Any] | None) -> str:
    return "" if not error else _clip(f"{error.get('type')}: {error.get('message')}")


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
