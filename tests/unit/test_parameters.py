from __future__ import annotations

import pytest

from flowforge.definition.models import ParameterSpec
from flowforge.definition.parameters import parse_cli_params, validate_parameters
from flowforge.errors import ParameterError, Problem

SPECS = {
    "n": ParameterSpec(type="integer", required=True),
    "ratio": ParameterSpec(type="number", default=0.5),
    "verbose": ParameterSpec(type="boolean", default=False),
    "ids": ParameterSpec(type="array", items={"type": "integer"}),
    "options": ParameterSpec(type="object"),
    "level": ParameterSpec(type="string", enum=["low", "high"], default="low"),
    "token": ParameterSpec(type="secret", source="env:TOKEN"),
}


def problems(given: dict[str, object], **kwargs: bool) -> list[Problem]:
    with pytest.raises(ParameterError) as caught:
        validate_parameters(SPECS, given, **kwargs)
    return caught.value.problems


def test_defaults_are_applied() -> None:
    assert validate_parameters(SPECS, {"n": 3}) == {
        "n": 3,
        "ratio": 0.5,
        "verbose": False,
        "ids": None,
        "options": None,
        "level": "low",
        "token": "env:TOKEN",
    }


def test_all_problems_at_once() -> None:
    found = problems({"ratio": "x", "extra": 1, "level": "mid", "ids": [1, "2"]})
    assert [(p.location, p.message) for p in found] == [
        (
            "params.extra",
            "unknown parameter (known: n, ratio, verbose, ids, options, level, token)",
        ),
        ("params.n", "required parameter is missing"),
        ("params.ratio", "must be a number, got 'x' (a string)"),
        ("params.ids[1]", "must be an integer, got '2' (a string)"),
        ("params.level", 'must be one of "low", "high", got \'mid\' (a string)'),
    ]


def test_a_bool_is_not_an_integer_nor_a_number() -> None:
    found = problems({"n": True, "ratio": False})
    assert [p.location for p in found] == ["params.n", "params.ratio"]
    assert found[0].message == "must be an integer, got true (a boolean)"


def test_strings_from_the_cli_are_coerced_where_unambiguous() -> None:
    given = {
        "n": "3",
        "ratio": "2.5",
        "verbose": "yes",
        "ids": "[1, 2]",
        "options": '{"a": 1}',
        "level": "high",
    }
    values = validate_parameters(SPECS, given, from_strings=True)
    assert values["n"] == 3 and values["ratio"] == 2.5 and values["verbose"] is True
    assert values["ids"] == [1, 2] and values["options"] == {"a": 1} and values["level"] == "high"


@pytest.mark.parametrize(
    ("name", "text"),
    [("n", "3.5"), ("n", "three"), ("ratio", "nan"), ("verbose", "maybe"), ("ids", "[1,")],
)
def test_ambiguous_strings_are_not_coerced(name: str, text: str) -> None:
    given = {"n": "1", name: text}
    assert [p.location for p in problems(given, from_strings=True)] == [f"params.{name}"]


def test_strings_are_not_coerced_without_from_strings() -> None:
    assert [p.location for p in problems({"n": "3"})] == ["params.n"]


def test_integral_float_counts_as_integer() -> None:
    assert validate_parameters(SPECS, {"n": 3.0})["n"] == 3


def test_secret_parameters_take_a_source_not_a_value() -> None:
    assert validate_parameters(SPECS, {"n": 1, "token": "file:/run/token"})["token"] == (
        "file:/run/token"
    )
    (problem,) = problems({"n": 1, "token": "hunter2"})
    assert problem == Problem(
        "params.token", "secret parameters take a source like env:NAME, not a value"
    )


def test_parse_cli_params() -> None:
    assert parse_cli_params(["n=3", "q=a=b", "empty="]) == {"n": "3", "q": "a=b", "empty": ""}
    with pytest.raises(ParameterError) as caught:
        parse_cli_params(["n", "=3", "a=1", "a=2"])
    assert [p.message for p in caught.value.problems] == [
        "'n' is not NAME=VALUE",
        "'=3' is not NAME=VALUE",
        "given more than once",
    ]
