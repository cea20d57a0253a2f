# ruff: noqa: E501 - the corpus is a table of one-line snippets
"""Acceptance (issue 4): a corpus of sandbox-escape snippets run as ``code`` blocks.

Each snippet is blocked (``InsecureCode`` from the static check, or a refusal of the restricted
runtime) or contained (the block fails with a clear error type, or completes having reached
nothing of the engine's); the engine survives every one and the block after them still runs.
A canary secret in the engine's environment never shows up in an output, an error, a log line,
an event or the database.

Two corpora:

- ``PYTHON_LAYER``: the default allow-list. Imports by every route, ``__subclasses__``, frame
  and traceback walks, ``gc``, ``ctypes``, format-string and pattern-matching tricks, and the
  resource bombs (loop, memory, recursion, output, result).
- ``PROCESS_LAYER``: as if the Python layer had been bypassed — the operator allowed ``os``,
  ``socket``, ``ctypes``… — so that only the process isolation stands: the environment, a fork
  bomb, a TCP connection to a listener of the test, the store's database file, files outside
  the scratch directory, the engine's own process. It needs the bubblewrap isolation (a
  private filesystem view, no network, a process limit); elsewhere it is skipped, and the docs
  say what is and is not contained then.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from integration_kit import store_bytes

import flowforge
from flowforge.sandbox import isolation as sandbox_isolation

CANARY = "ffcanary-5b7e2d94c1"
MARKER = "outside-the-scratch-3f9a"

LIMITS = {
    "FLOWFORGE_CODE_CPU_SECONDS": "2",
    "FLOWFORGE_CODE_WALL_SECONDS": "15",
    "FLOWFORGE_CODE_MEMORY_MB": "256",
    "FLOWFORGE_CODE_OUTPUT_BYTES": "65536",
    "FLOWFORGE_CODE_RESULT_BYTES": "1048576",
    "FLOWFORGE_CODE_MAX_PROCESSES": "8",
}


@dataclass(frozen=True)
class Snippet:
    id: str
    code: str
    errors: frozenset[str]
    """Error types that mean blocked or contained."""
    may_complete: bool = False
    """Completing is containment too (it reached nothing: the canary checks cover it)."""


def _s(id: str, code: str, *errors: str, may_complete: bool = False) -> Snippet:
    return Snippet(id, code, frozenset(errors), may_complete)


INSECURE = "InsecureCode"

PYTHON_LAYER = [
    # imports, by every route
    _s("import_os", "import os\nresult = os.environ['FLOWFORGE_TEST_CANARY']", INSECURE),
    _s("from_os_import", "from os import environ\nresult = dict(environ)", INSECURE),
    _s("import_os_path", "import os.path\nresult = os.path.exists('/')", INSECURE),
    _s("dunder_import", "result = __import__('os').environ.copy()", INSECURE),
    _s("importlib", "import importlib\nresult = importlib.import_module('os').getcwd()", INSECURE),
    _s("builtins_subscript", "result = __builtins__['__import__']('os').getpid()", INSECURE),
    _s("builtins_module", "import builtins\nresult = builtins.open('/etc/hostname').read()", INSECURE),
    _s("sys_modules", "import sys\nresult = sys.modules['os'].environ.copy()", INSECURE),
    _s("relative_import", "from . import secrets_of_the_engine\nresult = 1", INSECURE),
    _s("private_from_import", "from random import _os\nresult = _os.getpid()", INSECURE),
    # modules reached through an allowed module (the runtime's module views refuse them)
    _s("typing_sys", "import typing\nresult = typing.sys.modules['os'].environ.copy()", "AttributeError"),
    _s("uuid_os", "import uuid\nresult = uuid.os.environ.get('FLOWFORGE_TEST_CANARY')", "AttributeError"),
    _s("random_private_os", "import random\nresult = random._os.environ.copy()", "AttributeError"),
    _s("dataclasses_builtins", "import dataclasses\nresult = dataclasses.builtins.open('/etc/hostname').read()", "AttributeError"),
    _s("getattr_module_private", "import random\nresult = getattr(random, 'Random')\nresult = str(getattr(result, 'seed'))\nos_ = getattr(random, '_os')", INSECURE),
    _s("getattr_alias_bypass", "g = getattr\nname = '__glo' + 'bals__'\ndef f():\n    pass\nresult = str(g(f, name))", "AttributeError"),
    _s("string_formatter", "import string\nF = getattr(string, 'Formatter')\nresult = F().get_field('0.__class__', [()], {})", "AttributeError"),
    # object graph walks
    _s("subclasses_walk", "result = [c.__name__ for c in ().__class__.__base__.__subclasses__()]", INSECURE),
    _s("type_subclasses", "result = [c.__name__ for c in type.__subclasses__(object)]", INSECURE),
    _s("mro_walk", "result = str(().__class__.__mro__[1].__subclasses__())", INSECURE),
    _s("function_globals", "def f():\n    pass\nresult = str(f.__globals__['__builtins__'])", INSECURE),
    _s("getattr_dynamic", "def f():\n    pass\nname = '__glo' + 'bals__'\nresult = str(getattr(f, name))", INSECURE),
    _s("format_string", "result = '{0.__class__.__base__.__subclasses__}'.format(())", INSECURE),
    _s("match_class_attribute", "match ():\n    case object(__class__=c):\n        result = str(c)", INSECURE),
    _s("attrgetter", "import operator\nresult = str(operator.attrgetter('__globals__')(len))", INSECURE),
    _s("type_hints_eval", "from typing import get_type_hints\nresult = 1", INSECURE),
    # frames and tracebacks
    _s("generator_frame", "def g():\n    yield 1\nit = g()\nresult = str(it.gi_frame.f_back.f_globals)", INSECURE),
    _s("traceback_frame", "try:\n    1 / 0\nexcept Exception as e:\n    result = str(e.__traceback__.tb_frame.f_back.f_globals)", INSECURE),
    _s("globals_builtin", "result = str(globals()['__builtins__'])", INSECURE),
    _s("eval_exec_compile", "result = eval('1')\nexec('x = 1')\ncode = compile('1', 'x', 'eval')", INSECURE),
    _s("open_environ", "result = open('/proc/self/environ').read()", INSECURE),
    _s("gc_objects", "import gc\nresult = [str(o) for o in gc.get_objects()][:10]", INSECURE),
    _s("ctypes_getenv", "import ctypes\nresult = ctypes.CDLL(None).getenv(b'FLOWFORGE_TEST_CANARY')", INSECURE),
    _s("fork_bomb_blocked", "import os\nwhile True:\n    os.fork()", INSECURE),
    _s("socket_blocked", "import socket\nresult = socket.create_connection(('127.0.0.1', 1))", INSECURE),
    # resource bombs: contained by the limits
    _s("endless_loop", "while True:\n    pass", "ResourceLimit"),
    _s("endless_loop_catching", "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass", "ResourceLimit"),
    _s("regex_backtracking", "import re\nresult = bool(re.match(r'(a+)+$', 'a' * 64 + 'b'))", "ResourceLimit"),
    _s("memory_bomb", "hoard = []\nwhile True:\n    hoard.append(bytearray(50_000_000))", "ResourceLimit"),
    _s("deep_recursion", "def down(n):\n    return down(n + 1)\nresult = down(0)", "RecursionError"),
    _s("deep_nesting_result", "x = []\nfor _ in range(200_000):\n    x = [x]\nresult = x", "ResultNotSerializable"),
    _s("huge_output", "while True:\n    print('x' * 1000)", "ResourceLimit"),
    _s("huge_result", "result = 'x' * (8 * 1024 * 1024)", "ResourceLimit"),
]  # fmt: skip

PROCESS_LAYER = [
    _s("environ", "import os\nresult = dict(os.environ)", may_complete=True),
    _s("proc_self_environ", "import pathlib\nresult = pathlib.Path('/proc/self/environ').read_bytes().decode().split('\\0')", may_complete=True),
    _s("every_proc_environ", "import os, pathlib\nfound = []\nfor pid in os.listdir('/proc'):\n    if pid.isdigit():\n        try:\n            found.append(pathlib.Path(f'/proc/{pid}/environ').read_bytes().decode(errors='replace').split('\\0'))\n        except OSError as e:\n            found.append(repr(e))\nresult = found", may_complete=True),
    _s("engine_environ", "import pathlib\nresult = pathlib.Path('/proc/@ENGINE_PID@/environ').read_bytes().decode()", "FileNotFoundError"),
    _s("kill_the_engine", "import os, signal\nos.kill(@ENGINE_PID@, signal.SIGKILL)\nresult = 'killed?'", "ProcessLookupError"),
    _s("ctypes_getenv", "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.getenv.restype = ctypes.c_char_p\nresult = libc.getenv(b'FLOWFORGE_TEST_CANARY')", may_complete=True),
    _s("sys_modules_os", "import sys\nimport os\nresult = sys.modules['os'].environ.copy()", may_complete=True),
    _s("subprocess_env", "import subprocess\nresult = subprocess.run(['cat', '/proc/1/environ'], capture_output=True).stdout.decode().split('\\0')", "BlockingIOError", may_complete=True),
    _s("fork_bomb", "import os\nwhile True:\n    os.fork()", "BlockingIOError"),
    _s("tcp_to_listener", "import socket\ns = socket.create_connection(('127.0.0.1', @PORT@), timeout=3)\ns.sendall(b'escaped')\nresult = 'connected'", "ConnectionRefusedError", "OSError"),
    _s("tcp_outside", "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=3)\nresult = 'connected'", "OSError", "TimeoutError"),
    _s("read_outside_file", "import pathlib\nresult = pathlib.Path('@OUTSIDE@').read_text()", "FileNotFoundError", "PermissionError"),
    _s("write_outside_file", "import pathlib\npathlib.Path('@OUTSIDE@.pwned').write_text('pwned')\nresult = 'written'", "FileNotFoundError", "PermissionError", "OSError"),
    _s("list_the_root", "import os\nresult = sorted(os.listdir('/'))", may_complete=True),
    _s("gc_walk", "import gc\nresult = sum(1 for o in gc.get_objects() if isinstance(o, dict) and 'FLOWFORGE_TEST_CANARY' in o)", may_complete=True),
    _s("read_shadow", "import pathlib\nresult = pathlib.Path('/etc/shadow').read_text()", "FileNotFoundError", "PermissionError"),
]  # fmt: skip

DATABASE_SNIPPET = _s(
    "read_database",
    "import pathlib\nresult = pathlib.Path('@DATABASE@').read_bytes()[:64].hex()",
    "FileNotFoundError",
    "PermissionError",
)
PROCESS_MODULES = frozenset(
    {"os", "sys", "socket", "ctypes", "gc", "pathlib", "subprocess", "signal", "importlib"}
)


class Listener:
    """A TCP server on 127.0.0.1 that records every connection and every byte it receives."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.received: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.received.append(b"<connection>" + conn.recv(1024))
                except OSError:
                    self.received.append(b"<connection>")

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def sandbox_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWFORGE_TEST_CANARY", CANARY)
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name} {record.getMessage()}")


@pytest.fixture
def block_logs() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("flowforge.blocks")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _corpus_workflow(name: str, snippets: list[Snippet], **tokens: str) -> flowforge.Workflow:
    blocks: list[dict[str, Any]] = []
    for snippet in snippets:
        code = snippet.code
        for token, value in tokens.items():
            code = code.replace(f"@{token}@", value)
        blocks.append({"id": snippet.id, "type": "code", "code": code, "continue_on_failure": True})
    blocks.append(
        {
            "id": "after",
            "type": "code",
            "code": "result = 'the engine still runs blocks'",
            "depends_on": [s.id for s in snippets],
            "trigger_rule": "all_done",
        }
    )
    return flowforge.Workflow.from_dict({"id": name, "blocks": blocks})


def _check_each(result: flowforge.RunResult, snippets: list[Snippet]) -> None:
    wrong = []
    for snippet in snippets:
        block = result.block(snippet.id)
        if block.status == "completed":
            if not snippet.may_complete:
                wrong.append(f"{snippet.id}: completed with {block.output!r}")
            continue
        error = block.error or {}
        if block.status != "failed" or error.get("type") not in snippet.errors:
            wrong.append(f"{snippet.id}: {block.status} {error}")
        elif block.attempts != 1:
            wrong.append(f"{snippet.id}: {block.attempts} attempts")
    assert not wrong, "\n".join(wrong)
    assert result.block("after").output == "the engine still runs blocks"
    assert result.status == "completed"


def _leftover_processes(run_id: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if run_id.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _visible_text(engine: flowforge.Engine, run_ids: list[str], captured: Captured) -> str:
    parts: list[Any] = []
    for run_id in run_ids:
        parts.append(engine.get(run_id).to_dict())
        parts.append([(e.type, e.data) for e in engine.events(run_id)])
        parts.append([line.message for line in engine.logs(run_id)])
    parts.append(captured.lines)
    return json.dumps(parts, default=str)


def test_the_python_layer_corpus_is_blocked_or_contained_and_the_canary_never_leaks(
    engine: flowforge.Engine, store_url: str, block_logs: Captured
) -> None:
    assert len(PYTHON_LAYER) + len(PROCESS_LAYER) + 1 >= 30
    assert os.environ["FLOWFORGE_TEST_CANARY"] == CANARY

    result = engine.run(_corpus_workflow("escape-python-layer", PYTHON_LAYER))

    _check_each(result, PYTHON_LAYER)
    assert not _leftover_processes(result.run_id)
    refused = result.block("import_os").error or {}
    assert "line 1: import of module 'os' is not allowed" in refused["message"]
    visible = _visible_text(engine, [result.run_id], block_logs)
    assert "sandbox: " in visible  # the block logs say how it is isolated
    assert CANARY not in visible
    assert CANARY.encode() not in store_bytes(engine, store_url)


def test_the_process_layer_contains_code_that_got_past_the_python_layer(
    engine: flowforge.Engine,
    store_url: str,
    block_logs: Captured,
    listener: Listener,
    tmp_path: Path,
) -> None:
    isolation = sandbox_isolation.detect()
    if isolation.kind != "bubblewrap" or not isolation.process_limit_applies:
        pytest.skip(
            f"the process layer is {isolation.describe()}: without bubblewrap's private "
            "filesystem view and a process limit, docs/blocks/code.md lists what is exposed"
        )
    outside = tmp_path / "outside.txt"
    outside.write_text(MARKER)
    snippets = list(PROCESS_LAYER)
    tokens = {"PORT": str(listener.port), "OUTSIDE": str(outside), "ENGINE_PID": str(os.getpid())}
    if store_url.startswith("sqlite"):
        snippets.append(DATABASE_SNIPPET)
        tokens["DATABASE"] = store_url.removeprefix("sqlite:///")
    engine.policy = replace(flowforge.BlockPolicy.local(), code_extra_modules=PROCESS_MODULES)

    result = engine.run(_corpus_workflow("escape-process-layer", snippets, **tokens))

    _check_each(result, snippets)
    assert listener.received == [], "a connection reached the listener on 127.0.0.1"
    assert not (tmp_path / "outside.txt.pwned").exists()
    environ = result.block("environ").output
    assert set(environ) <= {"PWD", "LC_CTYPE"}, f"not an empty environment: {environ}"
    assert "flowforge.db" not in json.dumps(result.block("list_the_root").output)
    assert not _leftover_processes(result.run_id), "the fork bomb's processes are gone"
    visible = _visible_text(engine, [result.run_id], block_logs)
    assert MARKER not in visible
    assert CANARY not in visible
    assert CANARY.encode() not in store_bytes(engine, store_url)
