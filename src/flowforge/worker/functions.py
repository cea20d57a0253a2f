"""Finding a ``python`` block's function from its "module:attr" reference."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flowforge.errors import NonRetryableError


class FunctionResolver:
    """Looks in the workflow's own callables first, then imports from PYTHONPATH, the current
    directory and the workflow file's directory."""

    def __init__(
        self, callables: Mapping[str, Callable[..., Any]], source_dir: Path | None
    ) -> None:
        self._by_block = dict(callables)
        self._callables = {reference_of(fn): fn for fn in callables.values()}
        self._source_dir = source_dir
        self._cache: dict[str, Callable[..., Any]] = {}

    def for_block(self, block_id: str) -> Callable[[str], Callable[..., Any]]:
        """The resolver of one block: its own function first.

        Functions made in a loop or a factory share one ``module:qualname``; the block id tells
        them apart."""
        own = self._by_block.get(block_id)
        if own is None:
            return self
        own_reference = reference_of(own)
        return lambda reference: own if reference == own_reference else self(reference)

    def __call__(self, reference: str) -> Callable[..., Any]:
        fn = self._cache.get(reference) or self._callables.get(reference)
        if fn is None:
            fn = self._import(reference)
        self._cache[reference] = fn
        return fn

    def _import(self, reference: str) -> Callable[..., Any]:
        module_name, _, attr = reference.partition(":")
        for extra in (os.getcwd(), str(self._source_dir) if self._source_dir else None):
            if extra and extra not in sys.path:
                sys.path.append(extra)
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise NonRetryableError(
                f"cannot import module '{module_name}' for function '{reference}': {exc}",
                error_type="FunctionNotFound",
            ) from exc
        for part in attr.split("."):
            target = getattr(target, part, None)
            if target is None:
                raise NonRetryableError(
                    f"module '{module_name}' has no attribute '{attr}'",
                    error_type="FunctionNotFound",
                )
        if not callable(target):
            raise NonRetryableError(f"'{reference}' is not callable", error_type="FunctionNotFound")
        return target  # type: ignore[no-any-return]


def reference_of(fn: Callable[..., Any]) -> str:
    """The "module:qualname" reference of a function, as the Python API writes it."""
    return f"{fn.__module__}:{fn.__qualname__}"
