"""The script a ``code`` block's child process runs: ``python -I -S -B -u -c <this file>``.

It is self-contained (standard library only: the child cannot import flowforge) and importable
without side effects, so the engine can read its tables. In the child it:

1. sets its resource limits (``argv[3]``, JSON) and a handler that turns the CPU-time signal into
   an error, before it reads anything;
2. reads the request from stdin: ``{"code", "inputs", "allowed_modules"}``;
3. runs the code in a fresh ``__main__`` module whose builtins are restricted: no ``open``,
   ``eval``, ``exec``, ``compile``, ``globals``…; ``getattr``/``setattr``/``delattr`` refuse
   private names; ``import`` only reaches the allow-list, and a module comes back as a read-only
   view that hides its private names, the modules it imported itself (``uuid.os``,
   ``typing.sys``) and a few gadgets (``operator.attrgetter``, ``typing.get_type_hints``…);
4. writes one JSON line ``{"ready": …}`` once it is set up, and one final line with the
   result or the error, on the dedicated file descriptor ``argv[1]``: whatever the code prints
   goes to stdout/stderr and cannot be taken for the result.

These restrictions are defence in depth, not the security boundary: Python cannot sandbox
Python. The boundary is the process around this script (see ``flowforge.sandbox``).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import linecache
import os
import re
import resource
import signal
import sys
import traceback
import types
from typing import Any

CODE_FILENAME = "<code>"
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""A NUL character in JSON text (``\\u0000`` not itself escaped): PostgreSQL refuses it."""

DENIED_MODULE_ATTRIBUTES: dict[str, frozenset[str]] = {
    # dynamic attribute access: would reach dunders the static check refuses
    "operator": frozenset({"attrgetter", "methodcaller"}),
    "string": frozenset({"Formatter"}),
    # evaluate strings (forward references, string annotations) as Python expressions
    "typing": frozenset({"get_type_hints", "ForwardRef"}),
    "functools": frozenset({"singledispatch", "singledispatchmethod"}),
}
"""Public names of allowed modules that a code block cannot reach (runtime and static check)."""

FRAME_ATTRIBUTES = frozenset(
    {
        "f_back", "f_builtins", "f_code", "f_globals", "f_locals", "f_trace",
        "tb_frame", "tb_next",
        "gi_frame", "gi_code", "gi_yieldfrom",
        "cr_frame", "cr_code", "cr_await", "cr_origin",
        "ag_frame", "ag_code", "ag_await",
        "co_code", "co_consts", "co_names",
        "func_globals", "func_code",
    }
)  # fmt: skip
"""Attributes that lead from a value to frames, code objects or globals."""

REMOVED_BUILTINS = frozenset(
    {
        "__import__", "__loader__", "__spec__", "__package__", "__name__", "__doc__",
        "open", "eval", "exec", "compile", "globals", "locals", "vars", "breakpoint",
        "input", "help", "exit", "quit", "copyright", "credits", "license", "memoryview",
        "getattr", "setattr", "delattr",
    }
)  # fmt: skip
"""Builtins a code block does not get (``getattr``… are replaced by guarded versions)."""


class InsecureCode(ImportError):
    """The code reached something outside the sandbox's allow-list while it ran."""


class _CpuTimeExceeded(BaseException):
    """Raised by the CPU-time signal handler; a BaseException so ``except Exception`` misses it."""


def module_allowed(name: str, allowed: frozenset[str]) -> bool:
    """Whether module ``name`` is on the allow-list (an entry also allows its submodules)."""
    return any(name == entry or name.startswith(entry + ".") for entry in allowed)


def _set_limits(limits: dict[str, int]) -> None:
    table = {
        "cpu_seconds": resource.RLIMIT_CPU,
        "memory_bytes": resource.RLIMIT_AS,
        "file_size_bytes": resource.RLIMIT_FSIZE,
        "open_files": resource.RLIMIT_NOFILE,
        "processes": resource.RLIMIT_NPROC,
    }
    for key, which in table.items():
        value = int(limits[key])
        _, hard = resource.getrlimit(which)
        # the hard CPU limit kills (SIGKILL) code that ignores the soft one's signal
        high = value + 2 if which == resource.RLIMIT_CPU else value
        if hard != resource.RLIM_INFINITY:
            value, high = min(value, hard), min(high, hard)
        resource.setrlimit(which, (value, high))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _die_with_parent() -> None:
    """Without a pid namespace, nothing else ends this process if the engine dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PDEATHSIG
    except Exception:
        return
    if os.getppid() == 1:  # the engine died before prctl
        os._exit(1)


def _on_cpu_limit(signum: int, frame: object) -> None:
    raise _CpuTimeExceeded


class _Guard:
    """The restricted ``__import__``, attribute access and module views of one run."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed
        self.views: dict[str, types.ModuleType] = {}

    def import_(
        self,
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> types.ModuleType:
        if level != 0:
            raise InsecureCode("relative imports are not allowed in a code block")
        if not isinstance(name, str) or not (
            module_allowed(name, self.allowed)
            # ``from urllib import parse`` with ``urllib.parse`` allowed
            or (fromlist and all(module_allowed(f"{name}.{f}", self.allowed) for f in fromlist))
        ):
            raise InsecureCode(
                f"module {name!r} is not allowed in a code block "
                "(the operator can allow it with FLOWFORGE_CODE_ALLOWED_MODULES)"
            )
        # ``import a.b`` gets ``a`` back: its view shows ``b`` only when ``a.b`` is allowed
        return self.view(builtins.__import__(name, None, None, fromlist, 0))

    def view(self, module: types.ModuleType) -> types.ModuleType:
        found = self.views.get(module.__name__)
        if found is None:
            found = self.views[module.__name__] = self._make_view(module)
        return found

    def _make_view(self, module: types.ModuleType) -> types.ModuleType:
        guard = self
        denied = DENIED_MODULE_ATTRIBUTES.get(module.__name__, frozenset())

        # The real module lives only in this closure: nothing on the view object leads to it
        # without a dunder (``__getattr__``, ``__closure__``), which the static check refuses.
        class ModuleView(types.ModuleType):
            def __getattr__(self, attribute: str) -> Any:
                return guard.attribute(module, attribute, denied)

            def __dir__(self) -> list[str]:
                return sorted(n for n in dir(module) if not n.startswith("_") and n not in denied)

        view = ModuleView(module.__name__, module.__doc__)
        return view

    def attribute(self, module: types.ModuleType, attribute: str, denied: frozenset[str]) -> Any:
        name = module.__name__
        if attribute == "__all__":  # ``from module import *``
            names = getattr(module, "__all__", None) or dir(module)
            return [n for n in names if self._reachable(module, n, denied)]
        if attribute.startswith("_") or attribute in denied:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r} in a code block")
        value = getattr(module, attribute)
        if isinstance(value, types.ModuleType):
            if not module_allowed(value.__name__, self.allowed):
                raise AttributeError(
                    f"module {name!r} has no attribute {attribute!r} in a code block "
                    f"(module {value.__name__!r} is not allowed)"
                )
            return self.view(value)
        return value

    def _reachable(self, module: types.ModuleType, attribute: str, denied: frozenset[str]) -> bool:
        try:
            self.attribute(module, attribute, denied)
        except AttributeError:
            return False
        return True


def _check_attribute_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError("attribute name must be a string")
    if name.startswith("_") or name in FRAME_ATTRIBUTES:
        raise AttributeError(f"attribute {name!r} is not reachable in a code block")
    return name


def _safe_getattr(obj: object, name: str, *default: Any) -> Any:
    return getattr(obj, _check_attribute_name(name), *default)


def _safe_setattr(obj: object, name: str, value: Any) -> None:
    setattr(obj, _check_attribute_name(name), value)


def _safe_delattr(obj: object, name: str) -> None:
    delattr(obj, _check_attribute_name(name))


def safe_builtins(guard: _Guard) -> dict[str, Any]:
    """The builtins of the code: the usual ones minus ``REMOVED_BUILTINS``, plus guards."""
    table = {k: v for k, v in vars(builtins).items() if k not in REMOVED_BUILTINS}
    table.update(
        __import__=guard.import_,
        getattr=_safe_getattr,
        setattr=_safe_setattr,
        delattr=_safe_delattr,
    )
    return table


class _Channel:
    """The result channel: JSON lines on a file descriptor of its own."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message, allow_nan=False)
        view = memoryview((text + "\n").encode("utf-8"))
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


def _user_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == CODE_FILENAME]


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text or type(exc).__name__


def _error(exc: BaseException) -> dict[str, Any]:
    frames = _user_frames(exc)
    line: int | None = frames[-1].lineno if frames else None
    source = (frames[-1].line or "").strip() if frames else ""
    if isinstance(exc, SyntaxError) and exc.filename == CODE_FILENAME:
        line, source = exc.lineno, (exc.text or "").strip()
    # the user's traceback, without the runner's frames, for the block's log
    with contextlib.suppress(Exception):
        lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
        sys.stderr.write("Traceback (most recent call last):\n" + "".join(lines))
    message = _describe(exc)
    if line is not None:
        message = f"{message} (line {line}" + (f": {source})" if source else ")")
    return {"ok": False, "type": type(exc).__name__, "message": message, "line": line}


def _limit_error(kind: str, limits: dict[str, int]) -> dict[str, Any]:
    if kind == "cpu":
        message = f"the code used more than its CPU-time limit of {limits['cpu_seconds']}s"
    else:
        mib = limits["memory_bytes"] // (1024 * 1024)
        message = f"the code used more than its memory limit of {mib} MiB"
    return {"ok": False, "type": "ResourceLimit", "message": message, "line": None}


def _result(namespace: dict[str, Any]) -> dict[str, Any] | str:
    if "result" not in namespace:
        return {
            "ok": False,
            "type": "MissingResult",
            "message": "the code did not set the variable `result` (its output); "
            "end it with e.g. `result = {...}`, or `result = None` for no output",
            "line": None,
        }
    try:
        text = json.dumps(namespace["result"], allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return {
            "ok": False,
            "type": "ResultNotSerializable",
            "message": f"the variable `result` is not JSON-serialisable ({_describe(exc)}); "
            "use dicts, lists, strings, numbers, booleans and None",
            "line": None,
        }
    if _NUL.search(text):
        return {
            "ok": False,
            "type": "ResultNotSerializable",
            "message": "the variable `result` holds a NUL character (\\x00), which the store "
            "cannot keep; remove or replace it",
            "line": None,
        }
    return '{"ok": true, "result": ' + text + "}"


def main(argv: list[str]) -> None:
    channel = _Channel(int(argv[1]))
    limits = json.loads(argv[3])
    _set_limits(limits)
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    if limits.get("die_with_parent"):
        _die_with_parent()
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    code: str = request["code"]
    guard = _Guard(frozenset(request["allowed_modules"]))
    main_module = types.ModuleType("__main__")
    namespace = main_module.__dict__
    namespace.update(__builtins__=safe_builtins(guard), inputs=request["inputs"])
    # modules that look up ``__main__`` (dataclasses, pickle-like code) find the user's module
    sys.modules["__main__"] = main_module
    linecache.cache[CODE_FILENAME] = (len(code), None, code.splitlines(True), CODE_FILENAME)
    del request
    report: dict[str, Any] | str
    channel.send({"ready": True, "uid": os.getuid(), "pid": os.getpid()})
    try:
        compiled = compile(code, CODE_FILENAME, "exec", dont_inherit=True)
        exec(compiled, namespace)
        report = _result(namespace)
    except _CpuTimeExceeded:
        report = _limit_error("cpu", limits)
    except MemoryError:
        report = _limit_error("memory", limits)
    except BaseException as exc:
        report = _error(exc)
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    try:
        channel.send(report)
    except MemoryError:
        channel.send(_limit_error("memory", limits))
    except _CpuTimeExceeded:
        channel.send(_limit_error("cpu", limits))
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    # no interpreter shutdown: objects of the code must not run anything after the report
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
