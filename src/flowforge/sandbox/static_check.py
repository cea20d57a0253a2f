"""The static check of a ``code`` block's source: an AST walk before anything runs.

It refuses, with the line of each problem:

- imports outside the allow-list (``DEFAULT_ALLOWED_MODULES`` plus the operator's additions),
  relative imports, and importing private names (``from random import _os``);
- names that reach the interpreter: ``eval``, ``exec``, ``compile``, ``open``, ``globals``,
  ``locals``, ``vars``, ``breakpoint``, ``input``… and every dunder name (``__import__``,
  ``__builtins__``, ``__loader__``…);
- dunder attributes (``__class__``, ``__subclasses__``, ``__globals__``, ``__dict__``…) except a
  few harmless ones (``__init__``, ``__name__``…), and the attributes of frames, tracebacks,
  generators and code objects (``f_back``, ``tb_frame``, ``gi_frame``, ``co_code``…);
- ``getattr``/``setattr``/``delattr`` unless called with a literal, public attribute name;
- the dynamic-attribute and string-evaluation gadgets of allowed modules
  (``operator.attrgetter``, ``typing.get_type_hints``…);
- format strings that reach dunders (``"{0.__class__}".format(x)``).

This is defence in depth, never the boundary: Python offers too many ways around any such
list. What contains a ``code`` block is its process (``flowforge.sandbox``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass

from flowforge.sandbox.runner import DENIED_MODULE_ATTRIBUTES, FRAME_ATTRIBUTES, module_allowed

DEFAULT_ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        "base64", "binascii", "bisect", "calendar", "cmath", "collections", "copy", "csv",
        "dataclasses", "datetime", "decimal", "difflib", "enum", "fractions", "functools",
        "hashlib", "heapq", "hmac", "html", "ipaddress", "itertools", "json", "math",
        "numbers", "operator", "pprint", "random", "re", "secrets", "statistics", "string",
        "textwrap", "time", "typing", "unicodedata", "urllib.parse", "uuid", "zlib",
        "zoneinfo",
    }
)  # fmt: skip
"""Pure computation: no files, processes, network or interpreter internals."""

FORBIDDEN_NAMES = frozenset(
    {
        "eval", "exec", "compile", "open", "globals", "locals", "vars", "breakpoint",
        "input", "help", "exit", "quit", "memoryview", "copyright", "credits", "license",
    }
)  # fmt: skip
ALLOWED_DUNDER_NAMES = frozenset({"__name__"})
ALLOWED_DUNDER_ATTRIBUTES = frozenset(
    {
        "__init__", "__post_init__", "__name__", "__qualname__", "__doc__",
        "__enter__", "__exit__", "__iter__", "__next__", "__len__", "__contains__",
        "__getitem__", "__setitem__", "__delitem__", "__eq__", "__ne__", "__lt__", "__le__",
        "__gt__", "__ge__", "__hash__", "__repr__", "__str__", "__bool__", "__add__",
        "__sub__", "__mul__", "__truediv__", "__floordiv__", "__mod__", "__neg__", "__abs__",
    }
)  # fmt: skip
"""Dunder attributes that only call or name an object's own behaviour."""
ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "setattr", "delattr"})
DENIED_ATTRIBUTES = frozenset(name for names in DENIED_MODULE_ATTRIBUTES.values() for name in names)
MAX_SOURCE_CHARACTERS = 1_000_000
_FORMAT_FIELD = re.compile(r"\{[^{}]*(__|\.\s*(f|tb|gi|cr|ag|co)_)[^{}]*\}")


@dataclass(frozen=True, slots=True)
class Violation:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class CodeSyntaxError(ValueError):
    """The source does not parse; ``line`` is where."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def parse(source: str) -> ast.Module:
    """Parse ``source``; raises ``CodeSyntaxError`` with the line when it does not parse."""
    if len(source) > MAX_SOURCE_CHARACTERS:
        raise CodeSyntaxError(
            f"the code has {len(source)} characters, more than {MAX_SOURCE_CHARACTERS}", None
        )
    try:
        return ast.parse(source, filename="<code>", mode="exec")
    except SyntaxError as exc:
        where = f" (line {exc.lineno}: {(exc.text or '').strip()})" if exc.lineno else ""
        raise CodeSyntaxError(f"{exc.msg}{where}", exc.lineno) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        message = f"the code cannot be parsed: {str(exc) or type(exc).__name__}"
        raise CodeSyntaxError(message, None) from None


def check(source: str, allowed_modules: Iterable[str]) -> list[Violation]:
    """Every problem of ``source`` against the allow-list, in line order (empty: it passes)."""
    tree = parse(source)
    allowed = frozenset(allowed_modules)
    found: list[Violation] = []
    for node in ast.walk(tree):
        found.extend(_violations(node, allowed))
    return sorted(set(found), key=lambda v: (v.line, v.message))


def _violations(node: ast.AST, allowed: frozenset[str]) -> Iterable[Violation]:
    line = getattr(node, "lineno", 0)
    if isinstance(node, ast.Import):
        for alias in node.names:
            if not module_allowed(alias.name, allowed):
                yield Violation(line, f"import of module '{alias.name}' is not allowed")
    elif isinstance(node, ast.ImportFrom):
        yield from _import_from(node, allowed)
    elif isinstance(node, ast.Name):
        yield from _name(node)
    elif isinstance(node, ast.Attribute):
        yield from _attribute(node.attr, line)
    elif isinstance(node, ast.Call):
        yield from _call(node)
    elif isinstance(node, ast.MatchClass):
        # ``case object(__class__=c)`` reads the attribute like ``subject.__class__``
        for attribute in node.kwd_attrs:
            yield from _attribute(attribute, line)
    elif (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _FORMAT_FIELD.search(node.value)
    ):
        yield Violation(line, "a format string that reaches dunder or frame attributes")


def _import_from(node: ast.ImportFrom, allowed: frozenset[str]) -> Iterable[Violation]:
    if node.level:
        yield Violation(node.lineno, "relative imports are not allowed")
        return
    module = node.module or ""
    if not module_allowed(module, allowed) and not all(
        module_allowed(f"{module}.{alias.name}", allowed) for alias in node.names
    ):
        yield Violation(node.lineno, f"import of module '{module}' is not allowed")
        return
    for alias in node.names:
        if alias.name.startswith("_"):
            yield Violation(node.lineno, f"importing private name '{alias.name}' from '{module}'")
        elif alias.name in DENIED_MODULE_ATTRIBUTES.get(module, ()):
            yield Violation(node.lineno, f"'{module}.{alias.name}' is not available")


def _name(node: ast.Name) -> Iterable[Violation]:
    name = node.id
    if name in FORBIDDEN_NAMES:
        yield Violation(node.lineno, f"'{name}' is not allowed")
    elif _is_dunder(name) and name not in ALLOWED_DUNDER_NAMES:
        yield Violation(node.lineno, f"the name '{name}' is not allowed")


def _attribute(attribute: str, line: int) -> Iterable[Violation]:
    if _is_dunder(attribute) and attribute not in ALLOWED_DUNDER_ATTRIBUTES:
        yield Violation(line, f"the attribute '{attribute}' is not allowed")
    elif attribute in FRAME_ATTRIBUTES:
        yield Violation(line, f"the attribute '{attribute}' (frames, code objects) is not allowed")
    elif attribute in DENIED_ATTRIBUTES:
        yield Violation(line, f"'{attribute}' is not available (dynamic attribute access)")


def _call(node: ast.Call) -> Iterable[Violation]:
    function = node.func
    if not (isinstance(function, ast.Name) and function.id in ATTRIBUTE_FUNCTIONS):
        return
    name = node.args[1] if len(node.args) > 1 else None
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
        yield Violation(node.lineno, f"{function.id}() needs a literal attribute name")
    elif name.value.startswith("_") or name.value in FRAME_ATTRIBUTES:
        yield Violation(node.lineno, f"{function.id}() of the attribute '{name.value}'")


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")
