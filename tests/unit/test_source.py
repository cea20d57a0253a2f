from __future__ import annotations

from pathlib import Path

import pytest

from flowforge.definition.source import LineMap, format_location, load_source, parse_text
from flowforge.errors import DefinitionError, Problem

TEXT = """\
id: wf
blocks:
  - id: a
    type: noop
    depends_on:
      - b
      - c
  - id: b
    type: transform
    value: {x: 1}
"""


def test_lines_are_recorded_for_every_path() -> None:
    data, lines = parse_text(TEXT)
    assert data["blocks"][0]["depends_on"] == ["b", "c"]
    assert lines.line_for(("id",)) == 1
    assert lines.line_for(("blocks", 0)) == 3
    assert lines.line_for(("blocks", 0, "depends_on", 1)) == 7
    assert lines.line_for(("blocks", 1, "value", "x")) == 10


def test_line_of_a_missing_path_is_its_nearest_ancestors() -> None:
    _, lines = parse_text(TEXT)
    assert lines.line_for(("blocks", 1, "retry", "max_attempts")) == 8
    assert LineMap().line_for(("x",)) is None


def test_duplicate_keys_are_all_collected_with_lines() -> None:
    data, lines = parse_text("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert data == {"a": 1, "b": {"c": 1}}
    assert lines.problems == (
        Problem("b.c", "duplicate key 'c' (first on line 3)", 4),
        Problem("a", "duplicate key 'a' (first on line 1)", 5),
    )


def test_syntax_error_is_one_problem_with_the_line() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_text("id: wf\nblocks:\n  - id: a\n   type: [noop\n", "f.yaml")
    (problem,) = caught.value.problems
    assert problem.message.startswith("YAML syntax error")
    assert problem.line == 4
    assert caught.value.source == "f.yaml"


def test_json_is_read_as_yaml_and_duplicates_are_caught() -> None:
    data, lines = parse_text('{"id": "wf",\n "id": "other",\n "blocks": []}')
    assert data == {"id": "wf", "blocks": []}
    assert lines.problems[0].location == "id" and lines.problems[0].line == 2


def test_scalars_are_plain_json_values() -> None:
    data, _ = parse_text("a: 1\nb: 2.5\nc: true\nd: null\ne: 2030-01-01\nf: '007'\n")
    assert data == {"a": 1, "b": 2.5, "c": True, "d": None, "e": "2030-01-01", "f": "007"}


def test_anchors_and_merge_keys() -> None:
    data, lines = parse_text("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")
    assert data["c"] == {"x": 1, "y": 3}
    assert lines.problems == ()


def test_unsupported_tags_are_problems() -> None:
    _, lines = parse_text("a: !python/object x\n")
    assert lines.problems[0].message == "unsupported YAML tag '!python/object'"


def test_load_source_reads_files_and_reports_missing_ones(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(TEXT)
    data, _ = load_source(path)
    assert data["id"] == "wf"
    with pytest.raises(DefinitionError, match="cannot read the file"):
        load_source(tmp_path / "missing.yaml")


def test_format_location() -> None:
    assert format_location(("blocks", 2, "depends_on", 0)) == "blocks[2].depends_on[0]"
    assert format_location(("parameters", "threshold", "type")) == "parameters.threshold.type"
    assert format_location(("outputs", "a b")) == "outputs['a b']"
    assert format_location(()) == ""
