"""The dependency graph of a workflow's blocks: dependencies, cycles, roots, leaves."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from flowforge.definition.block import BlockSpec

__all__ = ["cycle_message", "dependencies_of", "dependents", "find_cycles", "leaves", "roots"]

Graph = Mapping[str, Sequence[str]]  # block id -> its dependencies, in definition order


def dependencies_of(block: BlockSpec, implicit_refs: Iterable[str]) -> tuple[str, ...]:
    """``depends_on`` then the blocks referenced by the block's templates, each once."""
    return tuple(dict.fromkeys((*block.depends_on, *implicit_refs)))


def find_cycles(graph: Graph) -> list[list[str]]:
    """Every cycle found by a depth-first search, each as ``[a, b, c, a]``.

    A cycle is listed from its block that comes first in ``graph`` order, and each set of blocks
    once; dependencies on ids that are not in ``graph`` are ignored.
    """
    order = {node: i for i, node in enumerate(graph)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: dict[frozenset[str], list[str]] = {}
    for start in graph:
        if start in state:
            continue
        path: list[str] = [start]
        stack: list[Iterator[str]] = [iter(graph[start])]
        state[start] = 1
        while stack:
            node = next(stack[-1], None)
            if node is None:
                state[path.pop()] = 2
                stack.pop()
            elif node not in graph or state.get(node) == 2:
                continue
            elif state.get(node) == 1:
                cycle = path[path.index(node) :]
                key = frozenset(cycle)
                if key not in cycles:
                    cycles[key] = _rotate(cycle, order)
            else:
                state[node] = 1
                path.append(node)
                stack.append(iter(graph[node]))
    return list(cycles.values())


def _rotate(cycle: list[str], order: Mapping[str, int]) -> list[str]:
    first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
    rotated = cycle[first:] + cycle[:first]
    return [*rotated, rotated[0]]


def cycle_message(cycle: Sequence[str]) -> str:
    """``cycle: a -> b -> c -> a``."""
    return "cycle: " + " -> ".join(cycle)


def roots(graph: Graph) -> tuple[str, ...]:
    """Blocks without dependencies, in definition order."""
    return tuple(node for node, deps in graph.items() if not deps)


def dependents(graph: Graph) -> dict[str, tuple[str, ...]]:
    """For every block, the blocks that depend on it, in definition order."""
    found: dict[str, list[str]] = {node: [] for node in graph}
    for node, deps in graph.items():
        for dep in deps:
            if dep in found:
                found[dep].append(node)
    return {node: tuple(users) for node, users in found.items()}


def leaves(graph: Graph) -> tuple[str, ...]:
    """Blocks nothing depends on, in definition order."""
    used = {dep for deps in graph.values() for dep in deps}
    return tuple(node for node in graph if node not in used)
