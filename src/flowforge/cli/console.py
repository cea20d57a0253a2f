"""Writing to the terminal: records as JSON on stdout, messages and problems on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NoReturn

import typer

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def dumps(data: Any, *, indent: int | None = 2) -> str:
    return json.dumps(data, indent=indent, default=_default, ensure_ascii=False)


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout, and nothing else."""
    sys.stdout.write(dumps(data) + "\n")
    sys.stdout.flush()


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """A one-line error on stderr and the exit code; never a traceback."""
    err(f"error: {message}")
    raise typer.Exit(code)


def problem_lines(error: Any, source: str | None = None) -> list[str]:
    """``order.yaml: blocks[2].depends_on[0] (line 14): unknown block 'fecth'``, one a problem."""
    where = getattr(error, "source", None) or source
    prefix = f"{where}: " if where else ""
    return [f"{prefix}{_problem(problem)}" for problem in error.problems]


def _problem(problem: Any) -> str:
    where = problem.location
    if problem.line is not None:
        where = f"{where} (line {problem.line})" if where else f"line {problem.line}"
    return f"{where}: {problem.message}" if where else problem.message


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A listing on stdout: a Rich table on a terminal, aligned plain columns otherwise."""
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        grid = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in cells:
            grid.add_row(*row)
        Console().print(grid)
        return
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def short_time(value: datetime | None) -> str:
    """A timestamp in local time, to the second."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return format_seconds((end - start).total_seconds())


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
