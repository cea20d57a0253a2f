"""The names templates see (SPEC 2.2), built lazily over a run's state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flowforge.engine.run_state import RunState

if TYPE_CHECKING:
    from flowforge.engine.frames import Frame

MASK = "***"


class BlocksView(Mapping[str, Mapping[str, Any]]):
    """``blocks.ID.output`` and friends, read from the live run state without copying it.

    Inside an iteration (``frame``), a body's block ids mean the instances of that iteration,
    then those of the enclosing iterations, then the workflow's blocks."""

    __slots__ = ("_blocks", "_frame", "_instances")

    def __init__(self, state: RunState, frame: Frame | None = None) -> None:
        self._blocks = state.blocks
        self._frame = frame
        self._instances = state.nodes

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        frame = self._frame
        while frame is not None:
            instance = frame.ids.get(key)
            if instance is not None:
                return self._blocks[instance].as_scope()
            frame = frame.parent
        if key in self._instances:
            raise KeyError(key)  # an iteration's block, by its instance id: not a name
        return self._blocks[key].as_scope()

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._blocks if key not in self._instances)

    def __len__(self) -> int:
        return len(self._blocks) - len(self._instances)


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
    frame: Frame | None = None,
) -> dict[str, Any]:
    """The template scope of a run; inside an iteration (``frame``) also ``item``, ``index``
    or ``iteration``, and the iteration's blocks."""
    scope: dict[str, Any] = {
        "params": params,
        "secrets": secrets,
        "blocks": BlocksView(state, frame),
        "run": state.run_scope(),
    }
    if frame is not None:
        scope.update(frame.variables)
    return scope
