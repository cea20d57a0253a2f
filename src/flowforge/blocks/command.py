"""``command``: run a program (argv, never a shell); output ``{exit_code, stdout, stderr}``.

The program gets a minimal environment, not the engine's (which may hold a database URL and
secrets): ``PATH``, ``HOME``, ``LANG``, ``TZ`` and ``TMPDIR`` as the engine has them, plus the
block's ``env``. It runs in a process group of its own (a new session), so that a timeout, a
cancel or the end of the program reaches every process it started, not just the first.

Stopping: when the run is canceled (``ctx.cancelled``) the group gets SIGTERM, so the program
can clean up; when the attempt is stopped for good (its ``timeout``, a terminate, the end of
the cancel grace period) the group gets SIGKILL. Processes left behind by a program that has
exited are killed too: a command's processes never outlive its block (except one that made a
session of its own with ``setsid``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, field_validator

from flowforge.definition.block import Block
from flowforge.definition.fields import Templated
from flowforge.errors import BlockError, NonRetryableError

DEFAULT_OUTPUT_LIMIT = 1024 * 1024
"""Bytes of each stream (stdout, stderr) kept in the output by default."""
INHERITED = ("PATH", "HOME", "LANG", "TZ", "TMPDIR")
"""The only variables of the engine's environment a command sees (when the engine has them)."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_CHUNK = 64 * 1024
_LOG_LINE_LIMIT = 10_000
_ERROR_TAIL = 1_000
_POLL = 0.05
"""Seconds between looks at ``ctx.cancelled`` (a thread-safe flag, not awaitable)."""
_DRAIN = 1.0
"""Seconds to wait for the pipes to close once the program is over."""


def _as_text(value: Any) -> Any:
    """Numbers and booleans as the text a program expects (``3``, ``2.5``, ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _argv_texts(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_as_text(item) for item in value]
    return value


def _env_texts(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _as_text(item) for key, item in value.items()}
    return value


Argv = Annotated[list[str], BeforeValidator(_argv_texts)]
Env = Annotated[dict[str, str], BeforeValidator(_env_texts)]


class CommandBlock(Block):
    """Run ``argv`` (no shell) with ``env`` in ``cwd``; output ``{exit_code, stdout, stderr}``.

    A non-zero exit fails the attempt (``CommandFailed``, retryable). Refused on a server
    unless its configuration enables commands (``FLOWFORGE_COMMAND_BLOCKS=1``).
    """

    type_name: ClassVar[str] = "command"

    argv: Templated[Argv]
    env: Templated[Env] = Field(default_factory=dict)
    cwd: str | None = None
    stdin: Any = None
    """Text written to the program's standard input (other JSON values as JSON text)."""
    max_output_bytes: Templated[Annotated[int, Field(ge=1)]] = DEFAULT_OUTPUT_LIMIT

    @field_validator("argv")
    @classmethod
    def _no_nul_in_argv(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("give at least the program to run")
            if any("\0" in item for item in value):
                raise ValueError("an argument holds a NUL character")
        return value

    @field_validator("env")
    @classmethod
    def _valid_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, text in value.items():
                if not name or "=" in name or "\0" in name:
                    raise ValueError(f"{name!r} is not a valid environment variable name")
                if "\0" in text:
                    raise ValueError(f"the value of {name} holds a NUL character")
        return value

    async def run(self, ctx: Any) -> dict[str, Any]:
        if not ctx.policy.command_enabled:
            raise NonRetryableError(
                "command blocks are disabled on this worker (a shared worker or server refuses "
                "them by default): set FLOWFORGE_COMMAND_BLOCKS=1 in the worker's environment "
                "to allow them",
                error_type="CommandDisabled",
            )
        cwd = self._working_directory()
        process = await self._start(cwd, ctx)
        ctx.logger.info(
            "started %s (pid %d, %d argument(s))", self.argv[0], process.pid, len(self.argv) - 1
        )
        stdout = _Capture(self.max_output_bytes, ctx.logger.info)
        stderr = _Capture(self.max_output_bytes, ctx.logger.warning)
        assert process.stdout is not None and process.stderr is not None
        pumps = [
            asyncio.create_task(stdout.pump(process.stdout)),
            asyncio.create_task(stderr.pump(process.stderr)),
        ]
        if process.stdin is not None:
            pumps.append(asyncio.create_task(_feed(process.stdin, self._stdin_bytes())))
        try:
            exit_code = await _wait(process, ctx)
        finally:
            # the program is over (or must be): nothing of its group may outlive the block
            _kill_group(process.pid, signal.SIGKILL)
            await _finish(process, pumps)
        ctx.logger.info("%s exited with code %d", self.argv[0], exit_code)
        result = {"exit_code": exit_code, "stdout": stdout.text(), "stderr": stderr.text()}
        if exit_code != 0:
            raise BlockError(self._failure(exit_code, stdout, stderr), error_type="CommandFailed")
        return result

    def _working_directory(self) -> str | None:
        if self.cwd is None:
            return None
        path = Path(self.cwd).expanduser()
        if not path.is_dir():
            raise NonRetryableError(
                f"cwd {self.cwd!r} is not an existing directory", error_type="InvalidInput"
            )
        return str(path)

    def _environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in INHERITED if name in os.environ}
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("LANG", "C.UTF-8")
        env.update(self.env)
        return env

    def _stdin_bytes(self) -> bytes:
        text = self.stdin if isinstance(self.stdin, str) else json.dumps(self.stdin)
        return text.encode()

    async def _start(self, cwd: str | None, ctx: Any) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL if self.stdin is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=self._environment(),
                start_new_session=True,  # a process group of its own: killed as one
            )
        except FileNotFoundError:
            where = "" if os.sep in self.argv[0] else " on the command's PATH"
            raise NonRetryableError(
                f"program {self.argv[0]!r} not found{where} "
                f"(PATH={self._environment()['PATH']}); give its full path or set env.PATH",
                error_type="CommandNotFound",
            ) from None
        except OSError as exc:  # permission denied, not an executable format...
            raise NonRetryableError(
                f"program {self.argv[0]!r} cannot be run: {exc.strerror or exc}",
                error_type="CommandNotExecutable",
            ) from None

    def _failure(self, exit_code: int, stdout: _Capture, stderr: _Capture) -> str:
        if exit_code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-exit_code).name}"
            except ValueError:
                how = f"was killed by signal {-exit_code}"
        else:
            how = f"exited with code {exit_code}"
        tail, stream = (stderr.tail(), "stderr") if stderr.seen else (stdout.tail(), "stdout")
        detail = f"; {stream} ends with: {tail}" if tail.strip() else "; it printed nothing"
        return f"command {self.argv[0]!r} {how}{detail}"


class _Capture:
    """One output stream: its first ``limit`` bytes kept, every byte counted, lines logged."""

    def __init__(self, limit: int, log: Any) -> None:
        self.limit = limit
        self.log = log
        self.kept = bytearray()
        self.seen = 0
        self.last = b""
        self.pending = b""

    async def pump(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
                self._log_lines(chunk[:room], final=False)
                if len(chunk) > room:
                    self._log_lines(b"", final=True)
                    self.log("[output beyond %d bytes is not kept]", self.limit)
            self.seen += len(chunk)
            self.last = (self.last + chunk)[-_ERROR_TAIL:]
        self._log_lines(b"", final=True)

    def _log_lines(self, data: bytes, final: bool) -> None:
        lines = (self.pending + data).split(b"\n")
        self.pending = b"" if final else lines.pop()
        for line in lines:
            if line or not final:
                self.log("%s", _decode(line.rstrip(b"\r"))[:_LOG_LINE_LIMIT])

    def text(self) -> str:
        text = _decode(bytes(self.kept))
        if self.seen > len(self.kept):
            text += f"\n[flowforge: output truncated: {len(self.kept)} of {self.seen} bytes kept]"
        return text

    def tail(self) -> str:
        return _decode(self.last).strip()


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    # a program that exits without reading its input is not an error of the block
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


async def _wait(process: asyncio.subprocess.Process, ctx: Any) -> int:
    """The exit code; SIGTERM to the group once the run asks the block to stop."""
    exited = asyncio.create_task(process.wait())
    try:
        terminated = False
        while True:
            done, _ = await asyncio.wait({exited}, timeout=_POLL)
            if done:
                return exited.result()
            if ctx.cancelled and not terminated:
                ctx.logger.warning("the run was canceled: sending SIGTERM to the command")
                _kill_group(process.pid, signal.SIGTERM)
                terminated = True
    finally:
        exited.cancel()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    # ProcessLookupError: the group is gone already; PermissionError: its id was reused
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _finish(process: asyncio.subprocess.Process, pumps: list[asyncio.Task[None]]) -> None:
    """Reap the process and let the pipes drain (they close once the group is dead)."""
    try:
        await asyncio.wait_for(process.wait(), _DRAIN * 5)
        await asyncio.wait(pumps, timeout=_DRAIN)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
