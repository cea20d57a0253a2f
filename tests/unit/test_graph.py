from __future__ import annotations

from flowforge.definition.builtin_specs import NoopSpec
from flowforge.definition.graph import (
    cycle_message,
    dependencies_of,
    dependents,
    find_cycles,
    leaves,
    roots,
)

GRAPH = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}


def test_dependencies_merge_explicit_and_implicit_in_first_mention_order() -> None:
    block = NoopSpec(id="x", depends_on=("b", "a"))
    assert dependencies_of(block, ["c", "a", "d", "c"]) == ("b", "a", "c", "d")


def test_roots_leaves_and_dependents() -> None:
    assert roots(GRAPH) == ("a", "e")
    assert leaves(GRAPH) == ("d", "e")
    assert dependents(GRAPH) == {"a": ("b", "c"), "b": ("d",), "c": ("d",), "d": (), "e": ()}


def test_acyclic_graph_has_no_cycle() -> None:
    assert find_cycles(GRAPH) == []


def test_cycles_are_named_from_their_first_block() -> None:
    graph = {"x": ("c",), "a": ("c",), "b": ("a",), "c": ("b",), "s": ("s",)}
    assert [cycle_message(c) for c in find_cycles(graph)] == [
        "cycle: a -> c -> b -> a",
        "cycle: s -> s",
    ]


def test_unknown_dependencies_are_ignored_by_cycle_search() -> None:
    assert find_cycles({"a": ("ghost",)}) == []
