from __future__ import annotations

import pytest

from flowforge.definition.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("10m", 600),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("2d", 172800),
        ("1.5s", 1.5),
        ("90", 90),
        ("2.5", 2.5),
        (45, 45),
        (0.25, 0.25),
        ("1d2h3m4s5ms", 93784.005),
    ],
)
def test_parse_duration_accepts_units_and_plain_seconds(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["10x", "", "m", "1h30", "-5s", -1, "ten", True, float("nan")])
def test_parse_duration_refuses_what_is_not_a_duration(bad: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_parse_duration_error_tells_the_accepted_forms() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("10x")
    assert str(caught.value) == (
        "'10x' is not a duration: use 500ms, 30s, 10m, 1h30m, 2d or a number of seconds"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1s"),
        (90, "1m30s"),
        (0.5, "500ms"),
        (0, "0s"),
        (5400, "1h30m"),
        (86400 + 1.5, "1d1s500ms"),
    ],
)
def test_format_duration_is_canonical(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.0001, 1.2345678, 3723.456, 0.1, 7 * 86400])
def test_formatted_durations_read_back_exactly(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
