"""``flowforge runs``: list and inspect runs on the store (start and control: run_control)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from flowforge.cli import run_control
from flowforge.cli.console import dumps, duration, out, print_json, short_time, table
from flowforge.cli.options import DatabaseUrl, Json

if TYPE_CHECKING:
    from flowforge.embedded import Engine

app = typer.Typer(help="Start, control and inspect runs.", no_args_is_help=True)
RunId = Annotated[str, typer.Argument(metavar="RUN_ID")]
app.command("start")(run_control.start)
app.command("cancel")(run_control.cancel)
app.command("terminate")(run_control.terminate)
app.command("pause")(run_control.pause)
app.command("resume")(run_control.resume)
app.command("retry")(run_control.retry)
app.command("signal")(run_control.signal)


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
def events(
    run_id: RunId,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing new events until the run ends (JSON Lines with --json).",
        ),
    ] = False,
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print a run's events in order; with --follow, new ones as they happen."""
    from flowforge.embedded import Engine

    with Engine(database_url) as engine:
        if follow:
            _follow(engine, run_id, json_output)
            return
        # Engine.list shadows the builtin in Engine's annotations: mypy misreads the type
        found = cast("Sequence[Any]", engine.events(run_id))
    if json_output:
        print_json([_event_dict(e) for e in found])
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


@app.command("logs")
def logs(
    run_id: RunId,
    block_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[BLOCK]", help="One block (an iteration's block too: 'each[3].fetch')."
        ),
    ] = None,
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, metavar="N", help="Only attempt N.")
    ] = None,
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print what a run's blocks logged (ctx.logger; the output of code and command blocks),
    attempt by attempt, secrets redacted."""
    from flowforge.embedded import Engine

    with Engine(database_url) as engine:
        lines = cast("Sequence[Any]", engine.logs(run_id, block_id))
    if attempt is not None:
        lines = [x for x in lines if x.attempt == attempt]
    if json_output:
        print_json(
            [
                {
                    "block_id": x.block_id,
                    "attempt": x.attempt,
                    "line": x.line,
                    "level": x.level,
                    "message": x.message,
                    "created_at": x.created_at.isoformat() if x.created_at else None,
                }
                for x in lines
            ]
        )
        return
    for x in lines:
        stamp = short_time(x.created_at)
        out(f"{stamp} {x.block_id}#{x.attempt} {x.level:<7} {x.message}")


FOLLOW_POLL = 0.2
"""Seconds between two reads of new events by ``runs events --follow``."""


def _follow(engine: Engine, run_id: str, json_output: bool) -> None:
    """Print the events as they are committed, until the run's final event (the last event
    read is a final one: a retried run goes on after its earlier end). Ctrl-C: exit 130."""
    import time

    from flowforge.embedded import TERMINAL_EVENTS

    after, last_type = 0, None
    if not json_output:
        out(_event_line("SEQ", "TIME", "TYPE", "BLOCK", "DATA"))
    try:
        while True:
            for event in cast("Sequence[Any]", engine.events(run_id, after)):
                after, last_type = event.seq, event.type
                if json_output:
                    out(dumps(_event_dict(event), indent=None))
                else:
                    out(
                        _event_line(
                            str(event.seq),
                            short_time(event.created_at),
                            event.type,
                            event.block_id or "",
                            dumps(event.data, indent=None) if event.data else "",
                        )
                    )
            if last_type in TERMINAL_EVENTS:
                return
            time.sleep(FOLLOW_POLL)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _event_line(seq: str, time: str, type_: str, block: str, data: str) -> str:
    return f"{seq:<5}  {time:<19}  {type_:<15}  {block:<16}  {data}".rstrip()


def _event_dict(event: Any) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "type": event.type,
        "block_id": event.block_id,
        "data": event.data,
        "created_at": event.created_at,
    }


def _error(error: dict[str, Any] | None) -> str:
    return "" if not error else _clip(f"{error.get('type')}: {error.get('message')}")


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
