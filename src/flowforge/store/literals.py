"""Statements with their values inlined, for PostgreSQL's simple-query protocol.

The engine sends a whole transaction (BEGIN, its statements, COMMIT) in one round trip, which
takes the simple-query protocol, so values travel as SQL literals. Strings are escaped by libpq
(``PQescapeLiteral``, the same as psycopg's client-side binding); this module only avoids the
per-value adapter machinery, which cost more than the statements themselves on the hot path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

_PARAM = re.compile(r"%\((\w+)\)s")


class Literals:
    """Renders ``%(name)s`` statements with literal values for one connection."""

    def __init__(self, escape: Callable[[bytes], bytes]) -> None:
        self._escape = escape
        self._compiled: dict[str, tuple[list[str], list[str]]] = {}

    def render(self, sql: str, params: Mapping[str, Any]) -> str:
        parts = self._compiled.get(sql)
        if parts is None:
            pieces = _PARAM.split(sql)
            parts = self._compiled[sql] = (pieces[0::2], pieces[1::2])
        texts, names = parts
        out = [texts[0]]
        for name, text in zip(names, texts[1:], strict=True):
            out.append(self.literal(params[name]))
            out.append(text)
        return "".join(out)

    def literal(self, value: Any) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return f"{value!r}::float8"
            special = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return f"'{special}'::float8"
        if isinstance(value, str):
            return self._escape(value.encode()).decode()
        if isinstance(value, datetime):
            return self._escape(value.isoformat().encode()).decode() + "::timestamptz"
        if isinstance(value, list | tuple):
            return "ARRAY[" + ", ".join(self.literal(item) for item in value) + "]"
        raise TypeError(f"no SQL literal for {type(value).__name__}")
