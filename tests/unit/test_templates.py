from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from jinja2 import TemplateSyntaxError

from flowforge.definition.templates import compile_expression, compile_value
from flowforge.errors import TemplateError

SCOPE: dict[str, Any] = {
    "params": {"n": 3, "code": "007", "items": ["x"]},
    "secrets": {"token": "s3cr3t"},
    "blocks": {"fetch": {"output": [1, 2, 3], "status": "completed", "error": None}},
    "run": {"id": "run_1"},
}


class LazyBlocks(Mapping[str, Any]):
    """A Mapping that is not a dict, as the engine may pass."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_single_expression_renders_the_native_value() -> None:
    assert compile_value("{{ blocks.fetch.output }}").render(SCOPE) == [1, 2, 3]
    assert compile_value("{{ params.n + 1 }}").render(SCOPE) == 4
    assert compile_value("  {{ {'a': params.n} }}  ").render(SCOPE) == {"a": 3}
    assert compile_value("{{ blocks.fetch.error }}").render(SCOPE) is None


def test_native_strings_stay_strings() -> None:
    assert compile_value("{{ params.code }}").render(SCOPE) == "007"
    assert compile_value("{{ '123' }}").render(SCOPE) == "123"


def test_mixed_text_renders_to_text() -> None:
    assert compile_value("n={{ params.n }}").render(SCOPE) == "n=3"
    assert compile_value("{{ params.n }}{{ params.n }}").render(SCOPE) == "33"
    assert compile_value("{% for x in blocks.fetch.output %}{{ x }};{% endfor %}").render(
        SCOPE
    ) == ("1;2;3;")


def test_nested_values_are_rendered_and_static_parts_kept() -> None:
    value = {"a": ["{{ params.n }}", 2], "b": {"c": "id={{ run.id }}"}, "d": 5}
    assert compile_value(value).render(SCOPE) == {"a": [3, 2], "b": {"c": "id=run_1"}, "d": 5}


def test_static_value_renders_to_itself_without_copy() -> None:
    value = {"a": [1, 2], "b": "plain"}
    template = compile_value(value)
    assert template.is_static
    assert template.render(SCOPE) is value


def test_raw_keys_are_not_rendered() -> None:
    template = compile_value({"f": "{{ x }}", "a": "{{ params.n }}"}, raw_keys=frozenset({"f"}))
    assert template.render(SCOPE) == {"f": "{{ x }}", "a": 3}


def test_bare_expression_renders_native() -> None:
    assert compile_expression("blocks.fetch.output | length > params.n - 1").render(SCOPE) is True
    assert compile_expression("params.n * 2").render(SCOPE) == 6


def test_expression_written_as_template_means_the_same() -> None:
    assert compile_expression("{{ params.n > 2 }}").render(SCOPE) is True


def test_references_name_roots_and_ids() -> None:
    template = compile_value(
        {
            "a": "{{ blocks.fetch.output }}",
            "b": "{{ blocks['total'].output + params.n }}",
            "c": "{{ secrets.token }} {{ run.id }}",
        }
    )
    assert template.references == {
        ("blocks", "fetch"),
        ("blocks", "total"),
        ("params", "n"),
        ("secrets", "token"),
    }
    assert template.block_ids == ("fetch", "total")


def test_expression_references() -> None:
    template = compile_expression("blocks.total.output > params.threshold")
    assert template.references == {("blocks", "total"), ("params", "threshold")}


@pytest.mark.parametrize(
    "text",
    [
        "{{ blocks.fetch.output }}",
        "{{ blocks['fetch'].output }}",
        "{{ blocks.fetch['output'][1] }}",
        "{{ params }}",
        "{{ params.items }}",
        "{{ blocks.fetch.output.count }}",
    ],
)
def test_fast_path_equals_jinja(text: str) -> None:
    fast = compile_value(text).render(SCOPE)
    slow = compile_value("{{ (" + text.strip("{} ") + ") }}").render(SCOPE)  # not a plain path
    assert fast == slow


def test_missing_key_fails_the_same_on_both_paths() -> None:
    messages = []
    for text in ("{{ blocks.fetch.nope }}", "{{ (blocks.fetch.nope) | string }}"):
        with pytest.raises(TemplateError) as caught:
            compile_value(text).render(SCOPE)
        messages.append(str(caught.value))
    assert "has no attribute 'nope'" in messages[0]
    assert "has no attribute 'nope'" in messages[1]
    assert "{{ blocks.fetch.nope }}" in messages[0]


def test_undefined_block_is_an_error_not_none() -> None:
    with pytest.raises(TemplateError, match=r"'missing' is undefined|has no attribute 'missing'"):
        compile_value("{{ blocks.missing.output }}").render(SCOPE)
    with pytest.raises(TemplateError):
        compile_expression("blocks.missing.output > 1").render(SCOPE)
    with pytest.raises(TemplateError):
        compile_value("{{ [blocks.fetch.nope] }}").render(SCOPE)


def test_attribute_access_works_on_any_mapping() -> None:
    scope = {**SCOPE, "blocks": LazyBlocks({"fetch": LazyBlocks({"output": 7})})}
    assert compile_value("{{ blocks.fetch.output }}").render(scope) == 7
    assert compile_expression("blocks.fetch.output > 5").render(scope) is True
    assert compile_value("x{{ blocks.fetch.output }}").render(scope) == "x7"


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ params.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ 'x' * 100000000 }}",
        "{{ 2 ** 99999999 }}",
    ],
)
def test_sandbox_refuses_unsafe_access(text: str) -> None:
    with pytest.raises(TemplateError):
        compile_value(text).render(SCOPE)


def test_sandbox_refuses_mutation() -> None:
    with pytest.raises(TemplateError):
        compile_value("{{ params['items'].append(1) }}").render(SCOPE)
    assert SCOPE["params"]["items"] == ["x"]


def test_syntax_error_raises_at_compile_time() -> None:
    with pytest.raises(TemplateSyntaxError):
        compile_value("{{ blocks.x.output }")
    with pytest.raises(TemplateSyntaxError):
        compile_expression("blocks.x.output >")


def test_other_render_errors_name_the_template_and_cause() -> None:
    with pytest.raises(
        TemplateError, match=r"template '\{\{ 1 / 0 \}\}' failed: ZeroDivisionError"
    ):
        compile_value("{{ 1 / 0 }}").render(SCOPE)


def test_each_distinct_string_is_compiled_once() -> None:
    first = compile_value("{{ params.n * 7 }}")._renderer
    second = compile_value("{{ params.n * 7 }}")._renderer
    assert first is second
