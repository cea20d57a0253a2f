"""The names templates see (SPEC 2.2), built lazily over a run's state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flowforge.engine.run_state import RunState

MASK = "***"


class BlocksView(Mapping[str, Mapping[str, Any]]):
    """``blocks.ID.output`` and friends, read from the live run state without copying it."""

    __slots__ = ("_blocks",)

    def __init__(self, state: RunState) -> None:
        self._blocks = state.blocks

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        return self._blocks[key].as_scope()

    def __iter__(self) -> Iterator[str]:
        return iter(self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)


class MaskedSecrets(Mapping[str, str]):
    """Secrets as seen where their values must not appear: every one reads ``***``."""

    __slots__ = ("_names",)

    def __init__(self, names: list[str]) -> None:
        self._names = names

    def __getitem__(self, key: str) -> str:
        if key not in self._names:
            raise KeyError(key)
        return MASK

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def build_scope(
    state: RunState,
    params: Mapping[str, Any],
    secrets: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The template scope of a run; ``extra`` adds ``item``, ``index``, ``iteration``."""
    scope: dict[str, Any] = {
        "params": params,
        "secrets": secrets,
        "blocks": BlocksView(state),
        "run": state.run_scope(),
    }
    if extra:
        scope.update(extra)
    return scope
