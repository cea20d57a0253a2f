from __future__ import annotations

from typing import Any, ClassVar

import pytest

from flowforge.definition import Block, BlockTypeRegistry, Templated, Workflow, block_type, validate
from flowforge.definition.builtin_specs import NoopSpec, WaitSpec
from flowforge.definition.fields import Duration
from flowforge.errors import DefinitionError, NonRetryableError


@block_type("greet_test")
class Greet(Block):
    name: str
    times: Templated[int] = 1
    pause: Templated[Duration] | None = None

    async def run(self, ctx: Any) -> Any:
        return f"hello {self.name}" * self.times


def test_builtins_are_available_without_the_blocks_package() -> None:
    registry = BlockTypeRegistry()
    assert {"noop", "transform", "python", "fail", "wait"} <= set(registry.names())
    noop = registry.get("noop")
    assert noop is not None and issubclass(noop, NoopSpec)


def test_custom_type_registered_with_the_decorator_validates_its_fields() -> None:
    spec = validate(
        {
            "id": "wf",
            "parameters": {"n": {"type": "integer"}},
            "blocks": [{"id": "g", "type": "greet_test", "name": "Ann", "times": "{{ params.n }}"}],
        }
    )
    block = spec.blocks[0]
    assert isinstance(block, Greet) and block.times == "{{ params.n }}"
    assert block.with_fields({"name": "Ann", "times": 2, "pause": "1m"}).times == 2
    assert Greet.type_name == "greet_test"


def test_custom_type_field_errors_are_located() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate({"id": "wf", "blocks": [{"id": "g", "type": "greet_test", "times": "x"}]})
    assert [(p.location, p.message) for p in caught.value.problems] == [
        ("blocks[0].name", "required field is missing"),
        ("blocks[0].times", "must be an integer, got 'x' (a string)"),
    ]


def test_rendered_fields_that_do_not_fit_fail_the_block_without_retry() -> None:
    block = WaitSpec(id="w", duration="{{ params.d }}")
    with pytest.raises(NonRetryableError) as caught:
        block.with_fields({"duration": "soon", "until": None})
    assert caught.value.error_type == "InvalidInput"
    assert "'soon' is not a duration" in caught.value.message


def test_a_separate_registry_does_not_see_default_registrations() -> None:
    registry = BlockTypeRegistry(use_entry_points=False)

    class Local(Block):
        type_name: ClassVar[str] = "local"

    registry.register("local", Local)
    assert registry.get("local") is Local
    assert registry.get("greet_test") is None
    wf = Workflow("w")
    wf.add({"id": "a", "type": "local"})
    assert wf.compile(registry).blocks["a"].spec.type == "local"


def test_builtin_names_cannot_be_taken_by_unrelated_classes() -> None:
    registry = BlockTypeRegistry()

    class Other(Block):
        pass

    with pytest.raises(ValueError, match="built-in"):
        registry.register("noop", Other)

    class BetterNoop(NoopSpec):
        pass

    registry.register("noop", BetterNoop)
    assert registry.get("noop") is BetterNoop


def test_register_refuses_what_is_not_a_block() -> None:
    with pytest.raises(TypeError):
        BlockTypeRegistry().register("x", dict)  # type: ignore[arg-type]


def test_block_type_field_must_match_the_class() -> None:
    with pytest.raises(ValueError, match="must be 'noop'"):
        NoopSpec(id="a", type="wait")
    assert NoopSpec(id="a").type == "noop"


def test_unknown_type_message_suggests_a_close_name() -> None:
    message = BlockTypeRegistry().unknown_type_message("tranform")
    assert message.startswith("unknown block type 'tranform' (known: ")
    assert message.endswith("did you mean 'transform'?")


def test_block_base_run_is_not_implemented() -> None:
    import asyncio

    with pytest.raises(NotImplementedError):
        asyncio.run(NoopSpec(id="a").run(None))
