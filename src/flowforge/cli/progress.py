"""Live progress of one run: a Rich view on a terminal, one plain line per event otherwise.

Both are observers (``engine.subscribe``) called on the worker's event loop after each commit;
the Rich view is also drawn by Rich's refresh thread, hence the lock.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from flowforge.cli.console import format_seconds

STYLES = {
    "pending": "dim",
    "running": "cyan",
    "retrying": "yellow",
    "waiting": "blue",
    "completed": "green",
    "failed": "bold red",
    "skipped": "dim",
    "canceled": "magenta",
}
_FINAL = frozenset({"completed", "failed", "skipped", "canceled"})
_RUN_END = frozenset({"completed", "failed", "canceled", "terminated", "timed_out"})


@dataclass
class BlockLine:
    block_id: str
    type: str = ""
    status: str = "pending"
    attempt: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    note: str = ""

    def elapsed(self, now: datetime) -> str:
        if self.started is None:
            return ""
        end = self.finished or (None if self.status in _FINAL else now)
        return "" if end is None else format_seconds(max((end - self.started).total_seconds(), 0))


class Board:
    """Every block's current line, updated from events."""

    def __init__(self, blocks: list[tuple[str, str]]) -> None:
        self.blocks = {block_id: BlockLine(block_id, kind) for block_id, kind in blocks}
        self.instances: dict[str, BlockLine] = {}
        """Blocks of iterations (``each[3].fetch``): printed as lines, left out of the table."""
        self.run_id: str | None = None
        self.run_status = "queued"
        self.run_started: datetime | None = None
        self.lock = threading.Lock()

    def seed(self, record: Any) -> None:
        """Start from a stored run record (``flowforge resume``)."""
        self.run_id, self.run_status = record.run_id, record.status
        self.run_started = record.started_at
        for block in record.blocks:
            line = self.blocks.setdefault(block.block_id, BlockLine(block.block_id, block.type))
            line.status, line.attempt = block.status, block.attempts
            line.started, line.finished = block.started_at, block.finished_at
            if block.error:
                line.note = _error_text(block.error)

    def apply(self, event: Any) -> bool:
        """Take ``event`` in; False when it belongs to another run."""
        if self.run_id is None and event.type == "run.queued":
            self.run_id = event.run_id
        if event.run_id != self.run_id:
            return False
        with self.lock:
            if event.block_id is None:
                self._run_event(event)
            else:
                self._block_event(event)
        return True

    def _run_event(self, event: Any) -> None:
        kind = event.type.removeprefix("run.")
        if kind == "started":
            self.run_started = event.created_at
        self.run_status = {"queued": "queued", "paused": "paused"}.get(kind, kind)
        if kind in ("started", "resumed", "retried"):
            self.run_status = "running"

    def line(self, block_id: str) -> BlockLine:
        lines = self.instances if "[" in block_id else self.blocks
        return lines.setdefault(block_id, BlockLine(block_id))

    def _block_event(self, event: Any) -> None:
        line = self.line(event.block_id)
        data = event.data or {}
        if event.type == "iteration.started":
            line.note = f"iteration {int(data.get('index', 0)) + 1}"
            return
        kind = event.type.removeprefix("block.")
        line.attempt = int(data.get("attempt") or line.attempt)
        if kind == "started":
            line.status, line.started, line.finished = "running", event.created_at, None
            line.note = ""
        elif kind == "retrying":
            line.status, line.finished = "retrying", None
            line.note = f"{_error_text(data.get('error'))}; retry in {data.get('delay', 0)}s"
        elif kind in ("completed", "failed", "canceled", "skipped", "waiting"):
            line.status = kind
            line.finished = event.created_at if kind != "waiting" else None
            if kind == "failed":
                line.note = _error_text(data.get("error"))
            elif kind == "skipped":
                line.note = str(data.get("reason") or "")

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for line in self.blocks.values():
            found[line.status] = found.get(line.status, 0) + 1
        return found


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "" if error is None else str(error)
    text = f"{error.get('type', 'Error')}: {error.get('message', '')}"
    return text if len(text) <= 200 else text[:197] + "..."


class PlainProgress:
    """One line per event on stderr: ``12:00:01 fetch  started (attempt 1)``."""

    def __init__(self, board: Board, stream: TextIO | None = None) -> None:
        self.board = board
        self.stream = stream or sys.stderr
        self.width = max([len(b) for b in board.blocks] + [3])

    def start(self) -> None:
        pass

    def note(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: Any) -> None:
        if not self.board.apply(event):
            return
        line = self._describe(event)
        if line is not None:
            stamp = (event.created_at or datetime.now(UTC)).astimezone().strftime("%H:%M:%S")
            who = event.block_id or "run"
            self.stream.write(f"{stamp} {who.ljust(self.width)}  {line}\n")
            self.stream.flush()

    def _describe(self, event: Any) -> str | None:
        kind, data = event.type, event.data or {}
        if event.block_id is None:
            if kind.removeprefix("run.") in _RUN_END:
                return f"{kind.removeprefix('run.')}" + self._took(event)
            return None if kind == "run.queued" else kind.removeprefix("run.")
        line = self.board.line(event.block_id)
        if kind == "iteration.started":
            return f"iteration {data.get('index')} started"
        if kind == "block.started":
            return f"started (attempt {data.get('attempt', line.attempt)})"
        if kind == "block.completed":
            return f"completed in {line.elapsed(datetime.now(UTC))}"
        if kind in ("block.failed", "block.retrying"):
            return f"{line.status}: {line.note}"
        if kind == "block.skipped":
            return f"skipped ({line.note})" if line.note else "skipped"
        return str(kind).removeprefix("block.")

    def _took(self, event: Any) -> str:
        start = self.board.run_started
        if start is None or event.created_at is None:
            return ""
        return f" in {format_seconds((event.created_at - start).total_seconds())}"

    def stop(self) -> None:
        pass


class LiveProgress:
    """A Rich live table on stderr: a line per block with status, attempt and duration."""

    def __init__(self, board: Board) -> None:
        from rich.console import Console
        from rich.live import Live

        self.board = board
        self.console = Console(stderr=True)
        self.live = Live(
            self,
            console=self.console,
            refresh_per_second=8,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def start(self) -> None:
        self.live.start()

    def note(self, text: str) -> None:
        self.live.console.print(text, markup=False, highlight=False)

    def __call__(self, event: Any) -> None:
        self.board.apply(event)

    def stop(self) -> None:
        self.live.refresh()
        self.live.stop()

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        now = datetime.now(UTC)
        board = self.board
        with board.lock:
            title = Text.assemble(
                ("run ", "bold"),
                (board.run_id or "…", "bold"),
                "  ",
                (board.run_status, STYLES.get(board.run_status, "bold")),
            )
            if board.run_started is not None:
                title.append(f"  {format_seconds((now - board.run_started).total_seconds())}")
            grid = Table(
                "block",
                "type",
                "status",
                "attempt",
                "time",
                "",
                box=None,
                header_style="bold",
                pad_edge=False,
            )
            for line in board.blocks.values():
                grid.add_row(
                    line.block_id,
                    line.type,
                    Text(line.status, STYLES.get(line.status, "")),
                    str(line.attempt or ""),
                    line.elapsed(now),
                    Text(line.note, "red" if line.status in ("failed", "retrying") else "dim"),
                )
            counts = "  ".join(f"{n} {s}" for s, n in sorted(board.counts().items()))
        return Group(title, grid, Text(counts, "dim"))


def make_progress(board: Board) -> PlainProgress | LiveProgress:
    """The live view on a terminal, plain lines otherwise."""
    if sys.stderr.isatty():
        return LiveProgress(board)
    return PlainProgress(board)
