from __future__ import annotations

import textwrap

import pytest

from flowforge.definition import Workflow, validate
from flowforge.definition.source import parse_text
from flowforge.errors import DefinitionError, Problem


def problems_of(text: str, **kwargs: object) -> list[Problem]:
    data, lines = parse_text(textwrap.dedent(text), "test.yaml")
    with pytest.raises(DefinitionError) as caught:
        validate(data, lines=lines, source="test.yaml", **kwargs)  # type: ignore[arg-type]
    assert caught.value.source == "test.yaml"
    return caught.value.problems


def only_problem(text: str, **kwargs: object) -> Problem:
    problems = problems_of(text, **kwargs)
    assert len(problems) == 1, problems
    return problems[0]


VALID = """\
id: order-report
parameters:
  order_ids: {type: array, items: {type: integer}, required: true}
  threshold: {type: number, default: 100}
  token: {type: secret, source: env:SHOP_TOKEN}
settings:
  timeout: 10m
  max_concurrency: 8
  retry: {max_attempts: 1}
  webhook_url: https://example.org/hook
blocks:
  - id: fetch
    type: transform
    value: "{{ params.order_ids }}"
    retry: {max_attempts: 3, initial_interval: 1s, backoff_coefficient: 2, max_interval: 30s}
  - id: total
    type: python
    function: examples.orders:total
    args: {orders: "{{ blocks.fetch.output }}", auth: "Bearer {{ secrets.token }}"}
  - id: notify
    type: transform
    if: "blocks.total.output > params.threshold"
    value: {total: "{{ blocks.total.output }}"}
outputs:
  total: "{{ blocks.total.output }}"
"""


def test_valid_definition_validates() -> None:
    data, lines = parse_text(VALID)
    spec = validate(data, lines=lines)
    assert [b.id for b in spec.blocks] == ["fetch", "total", "notify"]
    assert spec.settings.timeout == 600
    assert spec.blocks[0].retry is not None and spec.blocks[0].retry.max_interval == 30
    assert spec.blocks[2].if_ == "blocks.total.output > params.threshold"
    assert type(spec.blocks[1]).__name__ in ("PythonSpec", "PythonBlock")


def test_unknown_dependency_has_location_line_and_suggestion() -> None:
    problem = only_problem(
        """\
        id: wf
        blocks:
          - id: fetch
            type: noop
          - id: total
            type: noop
            depends_on: [fecth]
        """
    )
    assert problem.location == "blocks[1].depends_on[0]"
    assert problem.line == 7
    assert problem.message == "unknown block 'fecth'; did you mean 'fetch'?"
    assert str(problem) == (
        "blocks[1].depends_on[0] (line 7): unknown block 'fecth'; did you mean 'fetch'?"
    )


def test_duplicate_block_id() -> None:
    problem = only_problem(
        """\
        id: wf
        blocks:
          - {id: a, type: noop}
          - {id: a, type: noop}
        """
    )
    assert (problem.location, problem.line) == ("blocks[1].id", 4)
    assert problem.message == "duplicate block id 'a' (already used by blocks[0])"


def test_duplicate_parameter_key_comes_from_the_yaml_text() -> None:
    problem = only_problem(
        """\
        id: wf
        parameters:
          n: {type: integer}
          n: {type: string}
        blocks:
          - {id: a, type: noop}
        """
    )
    assert (problem.location, problem.line) == ("parameters.n", 4)
    assert problem.message == "duplicate key 'n' (first on line 3)"


def test_output_key_collision() -> None:
    problems = problems_of(
        """\
        id: wf
        blocks:
          - {id: a, type: noop}
        outputs:
          total: 1
          total: 2
          Total-Sum: 3
          total_sum: 4
        """
    )
    assert [(p.location, p.line, p.message) for p in problems] == [
        ("outputs.total", 6, "duplicate key 'total' (first on line 5)"),
        ("outputs.total_sum", 8, "output 'total_sum' collides with output 'Total-Sum'"),
    ]


def test_cycle_names_the_cycle() -> None:
    problem = only_problem(
        """\
        id: wf
        blocks:
          - {id: a, type: noop, depends_on: [c]}
          - {id: b, type: noop, depends_on: [a]}
          - id: c
            type: transform
            value: "{{ blocks.b.output }}"
          - {id: d, type: noop, depends_on: [a]}
        """
    )
    assert problem.message == "cycle: a -> c -> b -> a"
    assert (problem.location, problem.line) == ("blocks[0].depends_on[0]", 3)


def test_self_dependency_is_a_cycle() -> None:
    problem = only_problem("id: wf\nblocks:\n  - {id: a, type: noop, depends_on: [a]}\n")
    assert problem.message == "cycle: a -> a"


def test_unknown_block_type_lists_known_types() -> None:
    problem = only_problem("id: wf\nblocks:\n  - {id: a, type: nope}\n")
    assert problem.location == "blocks[0].type"
    assert problem.line == 3
    assert problem.message.startswith("unknown block type 'nope' (known: ")
    assert "noop" in problem.message and "transform" in problem.message


def test_a_misspelt_block_type_gets_a_suggestion() -> None:
    problem = only_problem("id: wf\nblocks:\n  - id: a\n    type: htp\n    url: x\n")
    assert problem.message.startswith("unknown block type 'htp' (known: ")
    assert problem.message.endswith("did you mean 'http'?")
    assert (problem.location, problem.line) == ("blocks[0].type", 4)


def test_the_block_library_types_validate_their_fields() -> None:
    problem = only_problem("id: wf\nblocks:\n  - id: a\n    type: http\n")
    assert (problem.location, problem.line) == ("blocks[0].url", 3)


def test_missing_field() -> None:
    problem = only_problem("id: wf\nblocks:\n  - id: a\n    type: transform\n")
    assert (problem.location, problem.line) == ("blocks[0].value", 3)
    assert problem.message == "required field is missing"


def test_ill_typed_field() -> None:
    problems = problems_of(
        """\
        id: wf
        settings:
          max_concurrency: many
          fail_fast: perhaps
        blocks:
          - id: a
            type: fail
            message: [1]
            continue_on_failure: 3
        """
    )
    assert [(p.location, p.line, p.message) for p in problems] == [
        ("settings.max_concurrency", 3, "must be an integer, got 'many' (a string)"),
        ("settings.fail_fast", 4, "must be true or false, got 'perhaps' (a string)"),
        ("blocks[0].message", 8, "must be a string, got [1] (a list)"),
        ("blocks[0].continue_on_failure", 9, "must be true or false, got 3 (an integer)"),
    ]


def test_unknown_field_suggests_the_close_one() -> None:
    problem = only_problem("id: wf\nblocks:\n  - {id: a, type: noop, retires: 3}\n")
    assert problem.location == "blocks[0].retires"
    assert problem.message == "unknown field 'retires'; did you mean 'retry'?"


def test_bad_duration() -> None:
    problems = problems_of(
        """\
        id: wf
        settings:
          timeout: 10x
        blocks:
          - id: a
            type: noop
            retry: {max_attempts: 2, initial_interval: soon}
          - id: w
            type: wait
            duration: forever
        """
    )
    assert [(p.location, p.line) for p in problems] == [
        ("settings.timeout", 3),
        ("blocks[0].retry.initial_interval", 7),
        ("blocks[1].duration", 10),
    ]
    assert problems[0].message == (
        "'10x' is not a duration: use 500ms, 30s, 10m, 1h30m, 2d or a number of seconds"
    )


def test_template_syntax_error() -> None:
    problems = problems_of(
        """\
        id: wf
        blocks:
          - id: a
            type: transform
            value:
              nested: ["ok", "{{ params.x }"]
          - id: b
            type: noop
            if: "blocks.a.output >"
        """
    )
    assert [(p.location, p.line) for p in problems] == [
        ("blocks[0].value.nested[1]", 6),
        ("blocks[1].if", 9),
    ]
    assert problems[0].message == "template syntax error: unexpected '}' (line 1 of the template)"
    assert problems[1].message.startswith("template syntax error: ")


def test_reference_to_unknown_parameter_secret_and_block() -> None:
    problems = problems_of(
        """\
        id: wf
        parameters:
          threshold: {type: number}
        blocks:
          - id: a
            type: transform
            value: "{{ params.treshold }}"
          - id: b
            type: transform
            value: "{{ secrets.threshold }} {{ secrets.token }}"
          - id: c
            type: transform
            if: "blocks.missing.output"
            value: "{{ blok.a }}"
        outputs:
          x: "{{ blocks.nope.output }}"
        """
    )
    assert [(p.location, p.line, p.message) for p in problems] == [
        ("blocks[0].value", 7, "unknown parameter 'treshold'; did you mean 'threshold'?"),
        (
            "blocks[1].value",
            10,
            "parameter 'threshold' is not a secret: declare it with type: secret",
        ),
        ("blocks[1].value", 10, "unknown secret 'token': declare a parameter with type: secret"),
        ("blocks[2].if", 13, "unknown block 'missing'"),
        (
            "blocks[2].value",
            14,
            "unknown name 'blok' in template: use params., secrets., blocks., run., item, "
            "index or iteration",
        ),
        ("outputs.x", 16, "unknown block 'nope'"),
    ]


def test_more_blocks_than_the_limit() -> None:
    text = "id: wf\nblocks:\n" + "".join(f"  - {{id: b{i}, type: noop}}\n" for i in range(5))
    problem = only_problem(text, max_blocks=4)
    assert (problem.location, problem.line) == ("blocks", 2)
    assert problem.message == "5 blocks is more than the limit of 4"


def test_workflow_and_block_id_patterns() -> None:
    problems = problems_of("id: Order Report\nblocks:\n  - {id: 1st, type: noop}\n")
    assert [(p.location, p.line) for p in problems] == [("id", 1), ("blocks[0].id", 3)]
    assert "is not a valid workflow id" in problems[0].message
    assert problems[1].message == (
        "'1st' is not a valid block id: use letters, digits and '_', not starting with a digit"
    )


def test_parameter_problems() -> None:
    problems = problems_of(
        """\
        id: wf
        parameters:
          n: {type: int}
          m: {type: integer, default: "x"}
          token: {type: secret}
          key: {type: string, source: env:KEY}
          level: {type: string, enum: [low, high], default: mid}
        blocks:
          - {id: a, type: noop}
        """
    )
    assert [(p.location, p.line) for p in problems] == [
        ("parameters.n.type", 3),
        ("parameters.m.default", 4),
        ("parameters.token", 5),
        ("parameters.key", 6),
        ("parameters.level.default", 7),
    ]
    assert problems[0].message.startswith("must be one of 'string', 'integer'")
    assert problems[1].message == "must be an integer, got 'x' (a string)"
    assert problems[2].message == "a secret parameter needs a source: env:NAME or file:/path"
    assert problems[3].message == "'source' is only for parameters of type secret"
    assert problems[4].message == 'must be one of "low", "high", got \'mid\' (a string)'


def test_all_problems_are_reported_at_once_even_in_other_blocks() -> None:
    problems = problems_of(
        """\
        id: wf
        blocks:
          - {id: a, type: transform}
          - {id: b, type: nope, depends_on: [zz]}
          - {id: c, type: wait, duration: 1s, until: "2030-01-01T00:00:00Z"}
          - {id: d, type: noop, depends_on: [a, b, c, e]}
        """
    )
    assert [(p.location, p.line) for p in problems] == [
        ("blocks[0].value", 3),
        ("blocks[1].type", 4),
        ("blocks[1].depends_on[0]", 4),  # an invalid block's dependencies are checked too
        ("blocks[2]", 5),
        ("blocks[3].depends_on[3]", 6),
    ]
    assert problems[3].message == "give exactly one of 'duration' or 'until'"


def test_not_a_mapping_and_empty_definitions() -> None:
    for data, message in [
        (None, "the definition is empty"),
        ([1], "a workflow definition must be a mapping"),
        ({"id": "wf"}, "required field is missing"),
        ({"id": "wf", "blocks": []}, "a workflow needs at least one block"),
        ({"id": "wf", "blocks": [3]}, "a block must be a mapping"),
    ]:
        with pytest.raises(DefinitionError) as caught:
            validate(data)
        assert caught.value.problems[0].message.startswith(message)


def test_plain_data_without_lines_has_no_line_numbers() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate({"id": "wf", "blocks": [{"id": "a", "type": "noop", "depends_on": ["x"]}]})
    assert caught.value.problems == [Problem("blocks[0].depends_on[0]", "unknown block 'x'", None)]


def test_error_message_lists_every_problem() -> None:
    data, lines = parse_text("id: wf\nblocks:\n  - {id: a, type: noop, depends_on: [x, y]}\n")
    with pytest.raises(DefinitionError) as caught:
        validate(data, lines=lines, source="flow.yaml")
    assert str(caught.value) == (
        "flow.yaml: invalid workflow definition (2 problem(s)):\n"
        "  - blocks[0].depends_on[0] (line 3): unknown block 'x'\n"
        "  - blocks[0].depends_on[1] (line 3): unknown block 'y'"
    )


def test_wait_until_accepts_iso_datetime_and_templates() -> None:
    spec = validate(
        {
            "id": "wf",
            "blocks": [
                {"id": "a", "type": "wait", "until": "2030-01-01T09:00:00"},
                {"id": "b", "type": "wait", "duration": "{{ params.delay }}"},
            ],
            "parameters": {"delay": {"type": "string"}},
        }
    )
    assert spec.blocks[0].until.isoformat() == "2030-01-01T09:00:00+00:00"  # type: ignore[attr-defined]
    assert spec.blocks[1].duration == "{{ params.delay }}"  # type: ignore[attr-defined]


def test_invalid_blocks_still_take_part_in_the_graph_checks() -> None:
    text = (
        "id: graph\n"
        "blocks:\n"
        "  - id: total\n"
        "    type: python\n"
        "    function: nope\n"
        "    depends_on: [fecth]\n"
        "  - id: a\n"
        "    type: noop\n"
        "    depends_on: [b]\n"
        "  - id: b\n"
        "    type: htp\n"
        "    depends_on: [a]\n"
    )
    with pytest.raises(DefinitionError) as caught:
        Workflow.from_text(text, source="graph.yaml")
    messages = {(p.location, p.line): p.message for p in caught.value.problems}
    assert "unknown block 'fecth'" in messages[("blocks[0].depends_on[0]", 6)]
    assert any("cycle" in m and "a -> b -> a" in m for m in messages.values()), messages
    assert ("blocks[2].type", 11) in messages
