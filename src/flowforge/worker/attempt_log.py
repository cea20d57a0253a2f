"""The log of one block attempt: what ``ctx.logger`` received, kept for ``flowforge runs logs``.

Each attempt gets a logger of its own (not registered in ``logging``'s tree, so attempts of the
same block in different runs never mix); its records also reach the ``flowforge.blocks``
logger's handlers as usual. Lines past ``MAX_LINES`` or ``MAX_BYTES`` are dropped with a note.
Secrets are redacted when the lines are taken.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flowforge.engine.records import LogLine
from flowforge.engine.values import escape_nul
from flowforge.worker.secrets import redact

MAX_LINES = 10_000
MAX_BYTES = 1 << 20
MAX_LINE = 16_384

_PARENT = logging.getLogger("flowforge.blocks")


class AttemptLog(logging.Handler):
    """Collects the records of one attempt's logger."""

    def __init__(self, block_id: str, attempt: int) -> None:
        super().__init__(logging.DEBUG)
        self.block_id = block_id
        self.attempt = attempt
        self._lines: list[LogLine] = []
        self._bytes = 0
        self._dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a bad format string must not fail the block
            message = str(record.msg)
        message = escape_nul(message)
        if len(message) > MAX_LINE:
            message = message[:MAX_LINE] + f"… ({len(message) - MAX_LINE} characters cut)"
        if len(self._lines) >= MAX_LINES or self._bytes + len(message) > MAX_BYTES:
            self._dropped += 1
            return
        self._bytes += len(message)
        created = datetime.fromtimestamp(record.created, UTC)
        line = LogLine(
            self.block_id, self.attempt, len(self._lines) + 1, record.levelname, message, created
        )
        self._lines.append(line)

    def lines(self, secrets: list[str]) -> tuple[LogLine, ...]:
        """The lines so far, secrets redacted (as is, URL-encoded, base64, JSON-escaped)."""
        lines = list(self._lines)
        if self._dropped:
            note = f"{self._dropped} more line(s) dropped: the log of an attempt keeps "
            note += f"{MAX_LINES} lines or {MAX_BYTES // 1024} KiB"
            lines.append(
                LogLine(
                    self.block_id, self.attempt, len(lines) + 1, "WARNING", note, datetime.now(UTC)
                )
            )
        if secrets:
            lines = [
                LogLine(
                    x.block_id,
                    x.attempt,
                    x.line,
                    x.level,
                    str(redact(x.message, secrets)),
                    x.created_at,
                )
                for x in lines
            ]
        return tuple(lines)


def attempt_logger(block_id: str, attempt: int) -> tuple[logging.Logger, AttemptLog]:
    """A logger for one attempt, and the handler that keeps its lines."""
    logger = logging.Logger(f"{_PARENT.name}.{block_id}", logging.DEBUG)
    logger.parent = _PARENT
    handler = AttemptLog(block_id, attempt)
    logger.addHandler(handler)
    return logger, handler
