"""``flowforge runs start / cancel / terminate / pause / resume / retry``: runs on the store.

These commands change the store and return at once: a worker (or ``flowforge resume`` in any
process) runs the run. A control that does not fit the run's status exits 1 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from flowforge.cli.console import err, out, print_json
from flowforge.cli.execution import Params, ParamsFile, _parameters
from flowforge.cli.options import DatabaseUrl, Json

if TYPE_CHECKING:
    from flowforge.embedded import Engine
    from flowforge.run_result import RunResult

RunId = Annotated[str, typer.Argument(metavar="RUN_ID")]
Reason = Annotated[
    str | None,
    typer.Option("--reason", metavar="TEXT", help="Why; kept as the run's failure reason."),
]


def start(
    workflow_id: Annotated[
        str, typer.Argument(metavar="WORKFLOW_ID", help="A stored workflow (workflows apply).")
    ],
    param: Params = None,
    params_file: ParamsFile = None,
    version: Annotated[
        int | None,
        typer.Option("--version", min=1, metavar="N", help="Default: the latest version."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help="A key already used for this workflow returns that run instead.",
        ),
    ] = None,
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Queue a run of a stored workflow and return at once (status queued).

    A worker, the server or `flowforge resume RUN_ID` runs it.
    Prints the run id, or the run record with --json.
    Exit 1 for an unknown workflow or version, 2 for invalid parameters.
    """
    given = _parameters(param or [], params_file)
    from flowforge.cli.queue import start_stored_run
    from flowforge.embedded import Engine

    with Engine(database_url) as engine:
        run = start_stored_run(engine, workflow_id, version, given, idempotency_key)
    if json_output:
        print_json(run.to_dict())
        return
    out(run.run_id)
    err(
        f"run {run.run_id} of {run.workflow_id} v{run.workflow_version} is {run.status}; "
        f"a worker runs it, or `flowforge resume {run.run_id}`"
    )


def cancel(
    run_id: RunId,
    reason: Reason = None,
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Cancel a run: nothing new starts, running blocks are asked to stop; ends canceled."""
    _control(database_url, json_output, lambda engine: engine.cancel(run_id, reason))


def terminate(
    run_id: RunId,
    reason: Reason = None,
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Terminate a run at once; it ends terminated."""
    _control(database_url, json_output, lambda engine: engine.terminate(run_id, reason))


def pause(run_id: RunId, json_output: Json = False, database_url: DatabaseUrl = None) -> None:
    """Pause a running run: running blocks finish, nothing new starts."""
    _control(database_url, json_output, lambda engine: engine.pause(run_id))


def resume(run_id: RunId, json_output: Json = False, database_url: DatabaseUrl = None) -> None:
    """Resume a paused run: it goes on wherever it runs (a worker, or `flowforge resume`).

    Unlike `flowforge resume RUN_ID`, this does not run the run in this process.
    """
    _control(database_url, json_output, lambda engine: engine.unpause(run_id))


def retry(run_id: RunId, json_output: Json = False, database_url: DatabaseUrl = None) -> None:
    """Continue a failed, canceled or timed-out run; completed blocks keep their outputs."""
    _control(database_url, json_output, lambda engine: engine.retry(run_id))


def signal(
    run_id: RunId,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The signal's name.")],
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload", metavar="JSON", help="The signal's payload (JSON; default null)."
        ),
    ] = None,
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Send a signal to a run: the wait_for_signal block waiting for NAME takes the payload.

    A signal sent before the block waits is kept for it. Exit 2 when no block of the run's
    workflow waits for NAME or the payload does not fit its schema; 1 when the run has ended.
    """
    import json

    from flowforge.errors import InvalidInputError

    value = None
    if payload is not None:
        try:
            value = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"--payload is not valid JSON: {exc}") from None
    _control(database_url, json_output, lambda engine: engine.signal(run_id, name, value))


def _control(
    database_url: str | None, json_output: bool, action: Callable[[Engine], RunResult]
) -> None:
    """Apply ``action(engine)`` and print the updated record. ``NotFoundError`` and
    ``InvalidStateError`` reach ``run_cli``: one line, exit 1."""
    from flowforge.embedded import Engine

    with Engine(database_url) as engine:
        run = action(engine)
    if json_output:
        print_json(run.to_dict())
        return
    reason = f" ({run.failure_reason})" if run.failure_reason else ""
    out(f"{run.run_id} {run.status}{reason}")
