"""Checks on the values the engine stores (outputs, payloads, log lines).

PostgreSQL cannot keep the NUL character (``\\u0000``) in ``text`` or ``jsonb``; SQLite can. So
that a run behaves the same on both stores, a value holding one is refused where it enters
(a block's output, a signal's payload) and shown escaped in messages and logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NUL = "\x00"


def has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (keys included) holds a NUL character."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, Mapping):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(item) for item in value)
    return False


def escape_nul(text: str) -> str:
    """``text`` with each NUL shown as ``\\x00``."""
    return text.replace(NUL, "\\x00") if NUL in text else text
