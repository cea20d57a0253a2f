"""Run a ``code`` block's source in its child process and collect what it reports.

The child is ``runner.py`` under the ``Isolation`` found on this machine. The engine talks to it
over three pipes and one more file descriptor: the request (code, inputs, allow-list) on stdin;
stdout and stderr read as they come, line by line, into the block's logger, up to the output
limit; the result as JSON lines on a pipe of its own. A wall-time limit, the output limit, an
oversized result and a cancellation of the attempt (the block's timeout, a canceled run) kill
the process group; the scratch directory is deleted whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from flowforge.sandbox.isolation import Isolation
from flowforge.sandbox.limits import SandboxLimits, format_size

CHUNK = 65536
POLL = 0.1
"""Seconds between looks at the attempt's cancellation (a thread-safe flag, not awaitable)."""
MAX_LOG_LINE = 8192
"""Bytes per log record: a longer line is logged in pieces."""
STDERR_TAIL = 2000
DRAIN_GRACE = 2.0
"""Seconds to wait for the pipes to close once the process ended (a leftover child may hold
them)."""
_ERROR_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MAX_MESSAGE = 4000


@cache
def runner_source() -> str:
    return Path(__file__).with_name("runner.py").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class SandboxOutcome:
    """What became of one run: the result, or an error type and a message for the user."""

    ok: bool
    result: Any = None
    error_type: str = ""
    message: str = ""


@dataclass
class _Run:
    isolation: Isolation
    limits: SandboxLimits
    logger: logging.Logger
    process: asyncio.subprocess.Process | None = None
    killed: str | None = None
    """Why the engine killed the process: ``wall``, ``output``, ``result``, ``canceled``."""
    output_used: int = 0
    stderr_tail: bytes = b""
    channel: bytearray = field(default_factory=bytearray)

    def kill(self, reason: str | None = None) -> None:
        if reason is not None and self.killed is None:
            self.killed = reason
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.kill_group()
        with contextlib.suppress(ProcessLookupError):
            process.kill()

    def kill_group(self) -> None:
        """SIGKILL the process group: the child leads it (``start_new_session``), so everything
        it started without leaving the group goes too; a namespace ends with its first process.
        """
        if self.process is not None:
            # ProcessLookupError: the group is gone; PermissionError: its id was reused
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def wait(self, cancelled: Callable[[], bool]) -> None:
        """Until the process ends; kill it past the wall-time limit or once canceled."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.wall_seconds
        exited = asyncio.ensure_future(self.process.wait())
        try:
            while True:
                timeout = max(0.0, min(POLL, deadline - loop.time()))
                done, _ = await asyncio.wait({exited}, timeout=timeout)
                if done:
                    return
                if cancelled():
                    self.kill("canceled")
                elif loop.time() >= deadline:
                    self.kill("wall")
        finally:
            exited.cancel()

    async def feed(self, data: bytes) -> None:
        assert self.process is not None and self.process.stdin is not None
        stdin = self.process.stdin
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)
            await stdin.drain()
        stdin.close()

    async def pump(self, stream: asyncio.StreamReader, level: int, name: str) -> None:
        """Log ``stream`` line by line until it closes; kill the process past the limit."""
        pending = b""
        while chunk := await stream.read(CHUNK):
            if self.killed == "output":
                continue  # drain what is left, unlogged
            room = self.limits.output_bytes - self.output_used
            overflow = len(chunk) > room
            chunk = chunk[: max(room, 0)]
            self.output_used += len(chunk)
            if name == "stderr":
                self.stderr_tail = (self.stderr_tail + chunk)[-STDERR_TAIL:]
            *lines, pending = (pending + chunk).split(b"\n")
            while len(pending) > MAX_LOG_LINE:
                lines.append(pending[:MAX_LOG_LINE])
                pending = pending[MAX_LOG_LINE:]
            for line in lines:
                self.log(level, line, name)
            if overflow:
                if pending:
                    self.log(level, pending, name)
                    pending = b""
                self.logger.warning(
                    "output truncated: the code printed more than %s (stdout and stderr "
                    "together); the process was killed",
                    format_size(self.limits.output_bytes),
                )
                self.kill("output")
        if pending:
            self.log(level, pending, name)

    def log(self, level: int, line: bytes, name: str) -> None:
        for piece in _pieces(line.rstrip(b"\r")):
            text = _printable(piece.decode("utf-8", errors="replace"))
            self.logger.log(level, "%s", text, extra={"stream": name})

    async def read_channel(self, reader: asyncio.StreamReader) -> None:
        cap = self.limits.result_bytes + 4096
        while chunk := await reader.read(CHUNK):
            if len(self.channel) + len(chunk) > cap:
                self.kill("result")
                return
            self.channel += chunk


def _printable(text: str) -> str:
    """``text`` without NUL characters, which PostgreSQL cannot store in text or JSON."""
    return text.replace("\x00", "\\x00")


def _pieces(line: bytes) -> list[bytes]:
    if len(line) <= MAX_LOG_LINE:
        return [line]
    return [line[i : i + MAX_LOG_LINE] for i in range(0, len(line), MAX_LOG_LINE)]


async def run_in_sandbox(
    code: str,
    inputs: Any,
    allowed_modules: Collection[str],
    *,
    isolation: Isolation,
    limits: SandboxLimits,
    logger: logging.Logger,
    label: str,
    cancelled: Callable[[], bool] = lambda: False,
) -> SandboxOutcome:
    """Run ``code`` with ``inputs`` (JSON-serialisable) in a child process and report.

    ``cancelled`` is polled while the code runs: once true, the process is killed."""
    request = json.dumps(
        {"code": code, "inputs": inputs, "allowed_modules": sorted(allowed_modules)}
    ).encode("utf-8")
    run = _Run(isolation, limits, logger)
    scratch = Path(tempfile.mkdtemp(prefix="flowforge-code-"))
    read_fd, write_fd = os.pipe()
    tasks: list[asyncio.Task[None]] = []
    transport: asyncio.BaseTransport | None = None
    try:
        uid = isolation.sandbox_uid()
        if uid is not None:
            os.chown(scratch, uid, uid)
        child_limits = limits.for_child(die_with_parent=isolation.kind == "process")
        argv = isolation.command(
            runner_source(), [str(write_fd), label, json.dumps(child_limits)], scratch, uid
        )
        try:
            run.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
                cwd=scratch,
                start_new_session=True,
                pass_fds=(write_fd,),
            )
        except OSError as exc:
            return _failure("SandboxError", f"the code's process could not start: {exc}")
        finally:
            os.close(write_fd)
        logger.debug("process %s started (%s) in %s", run.process.pid, label, scratch)
        channel = asyncio.StreamReader()
        pipe, read_fd = os.fdopen(read_fd, "rb", buffering=0), -1  # the file owns it now
        try:
            transport, _ = await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(channel), pipe
            )
        except BaseException:
            pipe.close()
            raise
        assert run.process.stdout is not None and run.process.stderr is not None
        tasks = [
            asyncio.create_task(run.feed(request)),
            asyncio.create_task(run.pump(run.process.stdout, logging.INFO, "stdout")),
            asyncio.create_task(run.pump(run.process.stderr, logging.WARNING, "stderr")),
            asyncio.create_task(run.read_channel(channel)),
        ]
        await run.wait(cancelled)
        # what the code started and left in its process group goes too (without a pid
        # namespace; with one, the namespace ended with its first process)
        run.kill_group()
        await asyncio.wait(tasks, timeout=DRAIN_GRACE)
        return _outcome(run)
    finally:
        run.kill()
        if run.process is not None and run.process.returncode is None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(run.process.wait(), 5)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        if transport is not None:
            transport.close()
        if read_fd >= 0:
            os.close(read_fd)
        _remove(scratch)


def _remove(path: Path) -> None:
    def retry(function: Any, name: str, _: Any) -> None:
        # the code may have taken the permissions away from its own files
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            function(name)

    shutil.rmtree(path, onerror=retry)


def _outcome(run: _Run) -> SandboxOutcome:
    limits = run.limits
    if run.killed == "wall":
        return _failure(
            "ResourceLimit",
            f"the code ran longer than its wall-time limit of {limits.wall_seconds:g}s "
            "and was killed",
        )
    if run.killed == "output":
        return _failure(
            "ResourceLimit",
            f"the code printed more than {format_size(limits.output_bytes)} (stdout and stderr "
            "together) and was killed; the block's log has the beginning",
        )
    if run.killed == "canceled":
        return _failure("Canceled", "the run asked the block to stop: its process was killed")
    if run.killed == "result":
        return _failure(
            "ResourceLimit",
            f"the code's result is larger than its limit of {format_size(limits.result_bytes)}",
        )
    messages = _messages(bytes(run.channel))
    ready = bool(messages) and messages[0].get("ready") is True
    final = next((m for m in messages if "ok" in m), None)
    if final is not None:
        return _reported(final)
    assert run.process is not None and run.process.returncode is not None
    code = run.process.returncode
    if not ready:
        tail = _printable(run.stderr_tail.decode("utf-8", errors="replace").strip())
        return _failure(
            "SandboxError",
            f"the code's process did not start ({run.isolation.kind}, exit status {code})"
            + (f": {tail[-500:]}" if tail else ""),
        )
    return _died(code, run)


def _messages(data: bytes) -> list[dict[str, Any]]:
    found = []
    for line in data.split(b"\n"):
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # the code may have written anything there
            continue
        if isinstance(message, dict):
            found.append(message)
    return found


def _reported(final: dict[str, Any]) -> SandboxOutcome:
    if final.get("ok") is True and "result" in final:
        return SandboxOutcome(ok=True, result=final["result"])
    error_type = final.get("type")
    if not isinstance(error_type, str) or not _ERROR_TYPE.match(error_type):
        error_type = "CodeError"
    message = final.get("message")
    if not isinstance(message, str) or not message:
        message = error_type
    return _failure(error_type, _printable(message[:MAX_MESSAGE]))


def _died(code: int, run: _Run) -> SandboxOutcome:
    number = -code if code < 0 else None
    if number is None and run.isolation.kind == "bubblewrap" and code > 128:
        number = code - 128  # bwrap exits 128 + the signal that ended its child
    if number in (signal.SIGKILL, signal.SIGXCPU):
        return _failure(
            "ResourceLimit",
            f"the code's process was killed by {signal.Signals(number).name}: it used more "
            f"than its CPU-time limit of {run.limits.cpu_seconds}s, or the machine ran out of "
            "memory",
        )
    if number == signal.SIGXFSZ:
        return _failure(
            "ResourceLimit",
            f"the code wrote a file larger than {format_size(run.limits.file_size_bytes)}",
        )
    if number is not None:
        name = signal.Signals(number).name if number in signal.valid_signals() else number
        return _failure("ProcessCrashed", f"the code's process died of signal {name}")
    return _failure(
        "ProcessCrashed", f"the code's process exited with status {code} before its result"
    )


def _failure(error_type: str, message: str) -> SandboxOutcome:
    return SandboxOutcome(ok=False, error_type=error_type, message=message)
