"""Durations: ``500ms``, ``30s``, ``10m``, ``1h30m``, ``1h 30m``, ``2d`` or a number of seconds."""

from __future__ import annotations

import math
import re
from decimal import Decimal

_UNITS = {
    "d": Decimal(86400),
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_PART = r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|d|h|m|s)"
_WHOLE = re.compile(rf"\s*(?:{_PART}\s*)+")
_PARTS = re.compile(_PART)
_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*")
_HINT = "use 500ms, 30s, 10m, 1h30m, 2d or a number of seconds"


def parse_duration(value: str | int | float) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` with a readable message if it is not one.

    Components may be separated by spaces (``1h 30m``) and are added up. Negative values,
    ``nan`` and ``inf`` are refused.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{value!r} is not a duration: {_HINT}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r} is not a duration: it must be a finite number >= 0")
        return float(value)
    if _NUMBER.fullmatch(value):
        return float(value)
    if not value.strip() or not _WHOLE.fullmatch(value):
        raise ValueError(f"{value!r} is not a duration: {_HINT}")
    # Decimal, so that format_duration's output reads back as the exact same float.
    return float(sum(Decimal(number) * _UNITS[unit] for number, unit in _PARTS.findall(value)))


def format_duration(seconds: float) -> str:
    """Canonical text of a duration: ``1s``, ``1m30s``, ``500ms``, ``1d2h``.

    Values that are not a whole number of milliseconds are written as plain seconds (``0.0001``),
    which :func:`parse_duration` reads back exactly.
    """
    total_ms = round(seconds * 1000)
    if total_ms == 0:
        return "0s" if seconds == 0 else repr(float(seconds))
    if abs(total_ms / 1000 - seconds) > 1e-9:
        return repr(float(seconds))
    text = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, total_ms = divmod(total_ms, size)
        if count:
            text.append(f"{count}{unit}")
    if total_ms:
        text.append(f"{total_ms}ms")
    return "".join(text)
