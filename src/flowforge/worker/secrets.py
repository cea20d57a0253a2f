"""Secrets: resolved from their source at run time, never stored, and redacted from results."""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flowforge.errors import ConfigurationError

MASK = "***"


def resolve_secret(source: str) -> str:
    """The secret named by ``env:NAME`` or ``file:/path``."""
    kind, _, name = source.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ConfigurationError(
                f"secret source {source}: environment variable {name} is not set"
            )
        return value
    if kind == "file":
        try:
            return Path(name).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"secret source {source}: {exc.strerror}") from exc
    raise ConfigurationError(f"secret source {source!r}: use env:NAME or file:/path")


class SecretsView(Mapping[str, str]):
    """``secrets.NAME`` for one attempt; remembers which values it handed out."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self._sources = sources
        self.used: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        if key not in self._sources:
            raise KeyError(key)
        if key not in self.used:
            self.used[key] = resolve_secret(self._sources[key])
        return self.used[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


def leak_forms(value: str) -> list[str]:
    """The forms a secret is likely to leak in: as is, URL-encoded, base64, JSON-escaped."""
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        base64.b64encode(value.encode()).decode(),
        json.dumps(value)[1:-1],
    }
    return sorted((f for f in forms if len(f) >= 3), key=len, reverse=True)


def redact(value: Any, secrets: list[str]) -> Any:
    """``value`` with every occurrence of a secret (in any likely form) replaced by ``***``."""
    if not secrets:
        return value
    forms = [form for secret in secrets for form in leak_forms(secret)]
    return _redact(value, forms)


def _redact(value: Any, forms: list[str]) -> Any:
    if isinstance(value, str):
        for form in forms:
            if form in value:
                value = value.replace(form, MASK)
        return value
    if isinstance(value, dict):
        return {_redact(k, forms): _redact(v, forms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, forms) for v in value]
    return value
