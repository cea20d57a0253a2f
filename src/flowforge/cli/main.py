"""The ``flowforge`` console script."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from flowforge.cli import database, execution, runs, worker_command, workflows
from flowforge.cli.console import EXIT_FAILED, EXIT_INVALID, err

app = typer.Typer(
    name="flowforge",
    help="flowforge: a durable workflow engine for Python.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("run")(execution.run)
app.command("resume")(execution.resume)
app.command("validate")(execution.validate)
app.command("worker")(worker_command.worker)
app.add_typer(workflows.app, name="workflows")
app.add_typer(runs.app, name="runs")
app.add_typer(database.app, name="db")


def _version(value: bool) -> None:
    if value:
        from flowforge import __version__

        typer.echo(f"flowforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """flowforge: a durable workflow engine for Python."""


def run_cli(argv: list[str] | None = None) -> int:
    """Run the command line in this process and return its exit code (for embedding, tests).

    User errors become a message and an exit code, never a traceback.
    """
    from flowforge.errors import (
        ConfigurationError,
        DefinitionError,
        FlowforgeError,
        InvalidInputError,
        ParameterError,
    )

    try:
        app(args=argv, prog_name="flowforge", standalone_mode=True)
    except SystemExit as done:
        return _code(done.code)
    except (DefinitionError, ParameterError) as error:
        try:
            execution.problems_exit(error)
        except typer.Exit as done:
            return done.exit_code
    except (ConfigurationError, InvalidInputError) as error:
        # a bad --database-url, an unreachable database, a bad setting: fix the invocation
        err(f"error: {error}")
        return EXIT_INVALID
    except FlowforgeError as error:
        err(f"error: {error}")
        return EXIT_FAILED
    return 0


def main() -> None:
    """The console script: ``run_cli``, then a hard exit.

    The work is done and committed (stores are closed by the commands) when ``run_cli``
    returns: what remains is the interpreter freeing every object and module one by one,
    about 40 ms after a run, a tenth of a short ``flowforge run``. Like mypy's ``hard_exit``,
    flush and leave with ``os._exit`` instead.
    """
    code = run_cli()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    os._exit(code)


def _code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    err(str(value))
    return EXIT_FAILED
