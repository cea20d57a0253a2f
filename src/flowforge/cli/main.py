"""The ``flowforge`` console script."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from flowforge.cli import database, execution, runs, workflows
from flowforge.cli.console import EXIT_FAILED, err

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
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """flowforge: a durable workflow engine for Python."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become a message and an exit code, never a traceback."""
    from flowforge.errors import DefinitionError, FlowforgeError, ParameterError

    try:
        app(args=argv, prog_name="flowforge")
    except (DefinitionError, ParameterError) as error:
        try:
            execution.problems_exit(error)
        except typer.Exit as done:
            sys.exit(done.exit_code)
    except FlowforgeError as error:
        err(f"error: {error}")
        sys.exit(EXIT_FAILED)
