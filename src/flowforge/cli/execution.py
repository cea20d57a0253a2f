"""``flowforge run``, ``flowforge resume`` and ``flowforge validate``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flowforge.cli.console import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    dumps,
    err,
    out,
    print_json,
    problem_lines,
)
from flowforge.cli.options import DatabaseUrl, Json

if TYPE_CHECKING:
    from flowforge.cli.progress import Board
    from flowforge.definition.workflow import Workflow
    from flowforge.embedded import Engine
    from flowforge.run_result import RunResult

Params = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="NAME=VALUE",
        help='A run parameter; strings are converted where unambiguous ("3" -> 3).',
    ),
]
ParamsFile = Annotated[
    Path | None,
    typer.Option(
        "--params-file",
        metavar="FILE",
        help="A YAML or JSON mapping of parameters; -p values override it.",
    ),
]
Detach = Annotated[
    bool,
    typer.Option(
        "--detach",
        help="Create the run, print its id and run it in a background "
        "process (flowforge resume RUN_ID); exit at once.",
    ),
]


def run(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Workflow definition (YAML/JSON).")],
    param: Params = None,
    params_file: ParamsFile = None,
    json_output: Json = False,
    detach: Detach = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Validate FILE and run it to the end in this process, with live progress.

    Prints the outputs, or the run record with --json.
    Exit 0 completed, 1 any other end, 2 invalid definition or parameters.
    """
    from flowforge.definition.parameters import validate_parameters
    from flowforge.definition.workflow import load

    workflow = load(file)
    given = _parameters(param or [], params_file)
    validate_parameters(workflow.compile().spec.parameters, given, from_strings=True)
    from flowforge.embedded import Engine

    with Engine(database_url) as engine:
        if detach:
            _detach(engine, workflow, given, json_output, database_url)
            return
        board = _board([(b, block.spec.type) for b, block in workflow.compile().blocks.items()])
        result = _follow(engine, board, lambda e: e.run_async(workflow, given, from_strings=True))
    _finish(result, json_output)


def resume(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Continue a run whose process died, in this process, to the end."""
    from flowforge.embedded import Engine

    with Engine(database_url) as engine:
        record = engine.get(run_id)
        if record.finished_at is None:
            board = _board([(b.block_id, b.type) for b in record.blocks])
            board.seed(record)
            done = sum(b.status == "completed" for b in record.blocks)
            what = "starting queued" if record.status == "queued" else "resuming"
            err(
                f"{what} run {run_id} (workflow {record.workflow_id} "
                f"v{record.workflow_version}): {done} of {len(record.blocks)} blocks completed"
            )
            record = _follow(engine, board, lambda e: e.resume_async(run_id))
    _finish(record, json_output)


def validate(
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help="Definitions to check.")],
    json_output: Json = False,
) -> None:
    """Check definitions and report every problem with its location; exit 2 if any."""
    from flowforge.definition.workflow import load
    from flowforge.errors import DefinitionError

    report: list[dict[str, Any]] = []
    for file in files:
        try:
            load(file)
        except DefinitionError as error:
            report.append(
                {"file": file, "valid": False, "problems": error.problems, "error": error}
            )
        else:
            report.append({"file": file, "valid": True, "problems": []})
    if json_output:
        print_json(
            [
                {
                    "file": entry["file"],
                    "valid": entry["valid"],
                    "problems": [
                        {"location": p.location, "line": p.line, "message": p.message}
                        for p in entry["problems"]
                    ],
                }
                for entry in report
            ]
        )
    else:
        for entry in report:
            if entry["valid"]:
                out(f"{entry['file']}: ok")
            for line in problem_lines(entry["error"]) if entry["problems"] else []:
                out(line)
    bad = sum(len(entry["problems"]) for entry in report)
    if bad:
        if not json_output:
            err(f"{bad} problem(s) in {sum(not e['valid'] for e in report)} file(s)")
        raise typer.Exit(EXIT_INVALID)


# -- helpers -----------------------------------------------------------------------------------


def _parameters(pairs: list[str], params_file: Path | None) -> dict[str, Any]:
    from flowforge.definition.parameters import parse_cli_params

    given: dict[str, Any] = {}
    if params_file is not None:
        given.update(_read_params_file(params_file))
    given.update(parse_cli_params(pairs))
    return given


def _read_params_file(path: Path) -> dict[str, Any]:
    import yaml

    from flowforge.errors import ParameterError, Problem

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ParameterError(
            [Problem("", f"cannot read the file: {error.strerror}")], str(path)
        ) from None
    except yaml.YAMLError as error:
        raise ParameterError([Problem("", f"not YAML or JSON: {error}")], str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(
            [Problem("", "must be a mapping of parameter names to values")], str(path)
        )
    return {str(k): v for k, v in data.items()}


def _board(blocks: list[tuple[str, str]]) -> Board:
    from flowforge.cli.progress import Board

    return Board(blocks)


def _follow(engine: Engine, board: Board, start: Any) -> RunResult:
    """Run ``start(engine)`` (a coroutine that ends with the run) under a progress view."""
    import asyncio

    from flowforge.cli.progress import make_progress

    progress = make_progress(board)
    announced = False

    def observe(event: Any) -> None:
        nonlocal announced
        progress(event)
        if not announced and board.run_id is not None:
            # before any block runs, so that a killed process can be resumed by its run id
            announced = True
            progress.note(f"run {board.run_id}")

    if board.run_id is not None:
        announced = True
    engine.subscribe(observe)
    progress.start()
    try:
        return asyncio.run(start(engine))  # type: ignore[no-any-return]
    except KeyboardInterrupt:
        progress.stop()
        hint = f": continue it with `flowforge resume {board.run_id}`" if board.run_id else ""
        err(f"interrupted{hint}")
        raise typer.Exit(130) from None
    finally:
        progress.stop()


def _finish(result: RunResult, json_output: bool) -> None:
    if json_output:
        print_json(result.to_dict())
    else:
        if result.outputs is not None and result.status == "completed":
            out(dumps(result.outputs))
        if result.status != "completed":
            reason = f": {result.failure_reason}" if result.failure_reason else ""
            err(f"run {result.run_id} {result.status}{reason}")
            for block in result.blocks:
                if block.status == "failed" and block.error:
                    err(
                        f"  {block.block_id}: {block.error.get('type')}: "
                        f"{block.error.get('message')}"
                    )
    raise typer.Exit(EXIT_OK if result.status == "completed" else EXIT_FAILED)


def _detach(
    engine: Engine,
    workflow: Workflow,
    given: dict[str, Any],
    json_output: bool,
    database_url: str | None,
) -> None:
    """Create the run queued, then hand it to ``flowforge resume`` in a process of its own."""
    import subprocess

    from flowforge.cli.queue import create_queued_run
    from flowforge.settings import database_url as resolve_url
    from flowforge.settings import home

    run_id = create_queued_run(engine, workflow, given)
    logs = home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{run_id}.log"
    paths = [str(workflow.source_dir or ""), os.getcwd(), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    with open(log_path, "ab") as log:
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowforge",
                "resume",
                run_id,
                "--database-url",
                resolve_url(database_url),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    if json_output:
        print_json(engine.get(run_id).to_dict())
    else:
        out(run_id)
        err(
            f"run {run_id} started in the background (log: {log_path}); "
            f"follow it with `flowforge runs show {run_id}`"
        )


def problems_exit(error: Any) -> None:
    """Print every problem of a DefinitionError/ParameterError and exit 2."""
    for line in problem_lines(error):
        err(line)
    err(f"error: {error.headline} ({len(error.problems)} problem(s))")
    raise typer.Exit(EXIT_INVALID)
