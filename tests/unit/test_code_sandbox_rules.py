"""The Python-level rules of ``code`` blocks: the static check, the runtime guard of the child
(exercised in this process: the runner's guard is plain Python) and the limits' settings."""

from __future__ import annotations

import pytest

from flowforge.errors import ConfigurationError
from flowforge.sandbox.limits import MIB, SandboxLimits
from flowforge.sandbox.runner import InsecureCode, _Guard, safe_builtins
from flowforge.sandbox.static_check import (
    DEFAULT_ALLOWED_MODULES,
    CodeSyntaxError,
    Violation,
    check,
)


def _problems(source: str, extra: frozenset[str] = frozenset()) -> list[str]:
    return [str(v) for v in check(source, DEFAULT_ALLOWED_MODULES | extra)]


LEGITIMATE = """
import json, math, re
import collections.abc
from urllib.parse import quote
from urllib import parse
from dataclasses import dataclass, field
from typing import Any

@dataclass
class Item:
    name: str
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name.strip()

class Box:
    def __init__(self, value: Any) -> None:
        self._value = value
    def __repr__(self) -> str:
        return f"Box({self._value!r}) {type(self).__name__}"

match inputs:
    case {"n": int(n)}:
        total = n
    case _:
        total = 0
value = getattr(Box(1), "missing", None)
result = {"total": total, "text": "{} and {{braces}} {0}".format(1), "name": __name__}
"""


def test_ordinary_code_passes() -> None:
    assert _problems(LEGITIMATE) == []


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("import os", "line 1: import of module 'os' is not allowed"),
        ("import json\nimport os.path", "line 2: import of module 'os.path' is not allowed"),
        ("from subprocess import run", "line 1: import of module 'subprocess' is not allowed"),
        ("from urllib import request", "line 1: import of module 'urllib' is not allowed"),
        ("from . import x", "line 1: relative imports are not allowed"),
        ("from random import _inst", "line 1: importing private name '_inst' from 'random'"),
        ("from typing import get_type_hints", "'typing.get_type_hints' is not available"),
        ("x = eval('1')", "line 1: 'eval' is not allowed"),
        ("f = open", "line 1: 'open' is not allowed"),
        ("v = vars()", "line 1: 'vars' is not allowed"),
        ("b = __builtins__", "line 1: the name '__builtins__' is not allowed"),
        ("m = __import__('os')", "line 1: the name '__import__' is not allowed"),
        ("c = ().__class__", "line 1: the attribute '__class__' is not allowed"),
        ("c = object.__subclasses__()", "line 1: the attribute '__subclasses__' is not allowed"),
        ("def f(): pass\ng = f.__globals__", "line 2: the attribute '__globals__' is not allowed"),
        ("d = x.__dict__", "line 1: the attribute '__dict__' is not allowed"),
        (
            "f = g.gi_frame",
            "line 1: the attribute 'gi_frame' (frames, code objects) is not allowed",
        ),
        ("f = tb.tb_frame.f_back", "the attribute 'tb_frame' (frames, code objects)"),
        ("c = f.co_code", "the attribute 'co_code' (frames, code objects)"),
        ("g = getattr(x, name)", "line 1: getattr() needs a literal attribute name"),
        ("g = getattr(x, '__class__')", "line 1: getattr() of the attribute '__class__'"),
        ("setattr(x, '_private', 1)", "line 1: setattr() of the attribute '_private'"),
        ("import operator\nf = operator.attrgetter('a')", "line 2: 'attrgetter' is not available"),
        (
            "s = '{0.__class__}'.format(1)",
            "a format string that reaches dunder or frame attributes",
        ),
        (
            "s = '{x.gi_frame}'.format(x=1)",
            "a format string that reaches dunder or frame attributes",
        ),
        (
            "match x:\n    case object(__class__=c):\n        pass",
            "line 2: the attribute '__class__'",
        ),
    ],
)
def test_each_rule_names_the_problem_and_its_line(source: str, problem: str) -> None:
    problems = _problems(source)
    assert any(problem in p for p in problems), problems


def test_every_problem_is_listed_once_in_line_order() -> None:
    assert _problems("import os\nimport os\nx = eval\ny = ().__class__") == [
        "line 1: import of module 'os' is not allowed",
        "line 2: import of module 'os' is not allowed",
        "line 3: 'eval' is not allowed",
        "line 4: the attribute '__class__' is not allowed",
    ]


def test_extra_modules_are_allowed_with_their_submodules() -> None:
    assert _problems("import os.path\nfrom os import environ", frozenset({"os"})) == []
    assert check("import json", []) == [Violation(1, "import of module 'json' is not allowed")]


@pytest.mark.parametrize(
    ("source", "line"),
    [("x = (\n", 1), ("if True:\nprint(1)", 2), ("a = 1\nb = = 2", 2), ("x = '\x00'", None)],
)
def test_code_that_does_not_parse_is_a_syntax_error_with_its_line(
    source: str, line: int | None
) -> None:
    with pytest.raises(CodeSyntaxError) as caught:
        check(source, DEFAULT_ALLOWED_MODULES)
    assert caught.value.line == line


def test_deeply_nested_or_huge_code_is_refused_without_crashing() -> None:
    with pytest.raises(CodeSyntaxError):
        check("x = " + "[" * 100_000 + "]" * 100_000, DEFAULT_ALLOWED_MODULES)
    with pytest.raises(CodeSyntaxError, match="more than"):
        check("x = 1\n" * 200_000, DEFAULT_ALLOWED_MODULES)


# -- the child's runtime guard ---------------------------------------------------------------


def _run(source: str, allowed: frozenset[str] = DEFAULT_ALLOWED_MODULES) -> dict[str, object]:
    namespace: dict[str, object] = {"__builtins__": safe_builtins(_Guard(allowed))}
    exec(compile(source, "<code>", "exec"), namespace)
    return namespace


def test_the_guard_refuses_modules_outside_the_allow_list() -> None:
    with pytest.raises(InsecureCode, match="module 'os' is not allowed"):
        _run("import os")
    with pytest.raises(InsecureCode, match="relative imports"):
        _run("from . import x")
    assert _run("from urllib import parse\nr = parse.quote('a b')")["r"] == "a%20b"


def test_module_views_hide_private_names_foreign_modules_and_gadgets() -> None:
    import urllib.request  # loaded: ``urllib.request`` is an attribute of ``urllib`` now

    assert urllib.request
    for source, missing in [
        ("import uuid\nuuid.os", "os"),
        ("import typing\ntyping.sys", "sys"),
        ("import random\nrandom._os", "_os"),
        ("import string\nstring.Formatter", "Formatter"),
        ("import operator\noperator.methodcaller", "methodcaller"),
        ("import urllib.parse\nurllib.request", "request"),
    ]:
        with pytest.raises(AttributeError, match=f"has no attribute '{missing}'"):
            _run(source)
    names = _run("from math import *\nr = sqrt(9)")
    assert names["r"] == 3.0


def test_the_builtins_lack_the_dangerous_ones_and_guard_attribute_access() -> None:
    builtins = safe_builtins(_Guard(DEFAULT_ALLOWED_MODULES))
    for name in ("open", "eval", "exec", "compile", "globals", "vars", "input", "breakpoint"):
        assert name not in builtins
    with pytest.raises(AttributeError, match="not reachable in a code block"):
        _run("g = getattr\ng(len, '__self__')")
    with pytest.raises(AttributeError, match="not reachable"):
        _run("def f():\n    yield 1\ngetattr(f(), 'gi_frame')")
    assert _run("r = getattr([], 'append') is not None")["r"] is True


# -- limits ------------------------------------------------------------------------------------


def test_limits_come_from_the_environment() -> None:
    limits = SandboxLimits.from_env(
        {
            "FLOWFORGE_CODE_CPU_SECONDS": "3",
            "FLOWFORGE_CODE_MEMORY_MB": "128",
            "FLOWFORGE_CODE_WALL_SECONDS": "1.5",
            "FLOWFORGE_CODE_MAX_PROCESSES": "4",
        }
    )
    assert (limits.cpu_seconds, limits.memory_bytes, limits.wall_seconds, limits.processes) == (
        3,
        128 * MIB,
        1.5,
        4,
    )
    assert SandboxLimits.from_env({}) == SandboxLimits()
    for bad in ("0", "lots", "-1", "nan"):
        with pytest.raises(ConfigurationError, match="FLOWFORGE_CODE_CPU_SECONDS"):
            SandboxLimits.from_env({"FLOWFORGE_CODE_CPU_SECONDS": bad})
