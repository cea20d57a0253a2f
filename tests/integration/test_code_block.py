"""``code`` blocks (SPEC 2.3, issue 4): every field, the output, the errors, the block log, the
limits and the isolation kinds. The sandbox-escape corpus is in ``test_code_sandbox.py``."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from integration_kit import async_wait_until

import flowforge
from flowforge.errors import DefinitionError
from flowforge.sandbox import isolation as sandbox_isolation


@pytest.fixture(autouse=True)
def fast_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWFORGE_CODE_CPU_SECONDS", "5")
    monkeypatch.setenv("FLOWFORGE_CODE_WALL_SECONDS", "20")
    monkeypatch.delenv("FLOWFORGE_CODE_ALLOWED_MODULES", raising=False)
    monkeypatch.delenv("FLOWFORGE_CODE_ISOLATION", raising=False)


def _workflow(
    *blocks: dict[str, Any], parameters: dict[str, Any] | None = None
) -> flowforge.Workflow:
    data: dict[str, Any] = {"id": "code-test", "blocks": list(blocks)}
    if parameters:
        data["parameters"] = parameters
    return flowforge.Workflow.from_dict(data)


def _code(code: str, block_id: str = "c", **fields: Any) -> dict[str, Any]:
    return {"id": block_id, "type": "code", "code": code, **fields}


def _processes_of(run_id: str) -> list[int]:
    """Live processes whose command line names ``run_id`` (the sandbox's label has it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and run_id.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


# -- inputs and result ---------------------------------------------------------------------------

VALUES: dict[str, Any] = {
    "text": 'héllo ✓ "quoted" \\ back',
    "integer": -42,
    "big": 2**62,
    "real": 3.25,
    "yes": True,
    "no": False,
    "nothing": None,
    "items": [1, "two", [3.0], {"four": 4}],
    "mapping": {"a": {"b": [None, True]}, "empty": {}},
}


def test_inputs_of_every_json_type_reach_the_code_as_the_mapping_inputs(
    engine: flowforge.Engine,
) -> None:
    code = "result = {'inputs': inputs, 'types': {k: type(v).__name__ for k, v in inputs.items()}}"
    wf = _workflow(
        _code(
            code,
            inputs={**VALUES, "from_param": "{{ params.n * 2 }}", "text_tpl": "n={{ params.n }}"},
        ),
        parameters={"n": {"type": "integer", "default": 21}},
    )

    output = engine.run(wf).block("c").output

    assert output["inputs"] == {**VALUES, "from_param": 42, "text_tpl": "n=21"}
    assert output["types"] == {
        "text": "str", "integer": "int", "big": "int", "real": "float", "yes": "bool",
        "no": "bool", "nothing": "NoneType", "items": "list", "mapping": "dict",
        "from_param": "int", "text_tpl": "str",
    }  # fmt: skip


def test_inputs_default_to_an_empty_mapping_and_take_upstream_outputs(
    engine: flowforge.Engine,
) -> None:
    wf = _workflow(
        _code("result = {'n': len(inputs), 'kind': type(inputs).__name__}", "first"),
        _code(
            "result = inputs['previous']['n'] + 1",
            "second",
            inputs={"previous": "{{ blocks.first.output }}"},
        ),
    )

    result = engine.run(wf)

    assert result.block("second").output == 1
    assert result.block("first").output == {"n": 0, "kind": "dict"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("result = 'text'", "text"),
        ("result = 7", 7),
        ("result = 0.5", 0.5),
        ("result = True", True),
        ("result = None", None),
        ("result = [1, [2, {'x': None}]]", [1, [2, {"x": None}]]),
        ("result = {'k': (1, 2), 3: 'int key'}", {"k": [1, 2], "3": "int key"}),
        ("result = 10 ** 30", 10**30),
    ],
    ids=["str", "int", "float", "bool", "null", "list", "dict", "bigint"],
)
def test_the_output_is_the_variable_result_as_json(
    engine: flowforge.Engine, code: str, expected: Any
) -> None:
    assert engine.run(_workflow(_code(code))).block("c").output == expected


def test_the_code_is_never_rendered_as_a_template(engine: flowforge.Engine) -> None:
    code = "x = '{{ params.n }}'\ny = '{% if true %}yes{% endif %}'\nresult = f'{x}|{y}|{{braces}}'"
    wf = _workflow(_code(code), parameters={"n": {"type": "integer", "default": 1}})

    assert engine.run(wf).block("c").output == "{{ params.n }}|{% if true %}yes{% endif %}|{braces}"


def test_a_secret_input_reaches_the_code_and_is_redacted_from_the_output(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FF_CODE_SECRET", "t0ken-9b2f")
    wf = _workflow(
        _code(
            "print('token length', len(inputs['token']))\n"
            "result = {'ok': inputs['token'] == 't0ken-9b2f', 'echo': inputs['token']}",
            inputs={"token": "{{ secrets.token }}"},
        ),
        parameters={"token": {"type": "secret", "source": "env:FF_CODE_SECRET"}},
    )

    result = engine.run(wf)

    assert result.block("c").output == {"ok": True, "echo": "***"}
    assert "t0ken-9b2f" not in str(engine.logs(result.run_id))


def test_usual_python_and_the_allowed_modules_work(engine: flowforge.Engine) -> None:
    code = """
import json, math, re, statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, asdict
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode
from math import *

@dataclass
class Line:
    word: str
    count: int

class Base:
    def __init__(self, n):
        self.n = n

class Child(Base):
    def __init__(self, n):
        super().__init__(n * 2)

words = re.findall(r"[a-z]+", inputs["text"].lower())
counts = Counter(words)
groups = defaultdict(list)
for w in words:
    groups[len(w)].append(w)
result = {
    "top": [asdict(Line(w, c)) for w, c in counts.most_common(2)],
    "mean": statistics.mean(len(w) for w in words),
    "sqrt": sqrt(16) + math.floor(pi),
    "next_day": (date(2024, 2, 28) + timedelta(days=1)).isoformat(),
    "money": str(Decimal("0.1") + Decimal("0.2")),
    "query": urlencode({"q": "a b"}),
    "child": Child(2).n,
    "lambda": list(map(lambda x: x * x, range(4))),
    "gen": sum(x for x in range(5)),
    "json": json.loads(json.dumps({"x": [1]})),
}
"""
    output = (
        engine.run(_workflow(_code(code, inputs={"text": "the cat and the hat"}))).block("c").output
    )

    assert output == {
        "top": [{"word": "the", "count": 2}, {"word": "cat", "count": 1}],
        "mean": 3,
        "sqrt": 7.0,
        "next_day": "2024-02-29",
        "money": "0.3",
        "query": "q=a+b",
        "child": 4,
        "lambda": [0, 1, 4, 9],
        "gen": 10,
        "json": {"x": [1]},
    }


# -- errors --------------------------------------------------------------------------------------

RETRY = {"max_attempts": 3, "initial_interval": "10ms", "jitter": False}


def test_an_exception_names_its_type_and_line_and_follows_the_retry_policy(
    engine: flowforge.Engine,
) -> None:
    code = "total = 0\nfor n in inputs['values']:\n    total += 10 / n\nresult = total"
    wf = _workflow(_code(code, inputs={"values": [1, 0]}, retry={**RETRY, "max_attempts": 2}))

    result = engine.run(wf)

    block = result.block("c")
    assert block.status == "failed"
    assert block.attempts == 2
    assert block.error == {
        "type": "ZeroDivisionError",
        "message": "division by zero (line 3: total += 10 / n)",
    }
    logged = [(line.level, line.message) for line in engine.logs(result.run_id, "c")]
    assert ("WARNING", "Traceback (most recent call last):") in logged
    assert ("WARNING", "ZeroDivisionError: division by zero") in logged
    assert not any("runner" in message for _, message in logged), "only the user's frames"


def test_the_error_type_is_the_class_name_of_the_users_exception(
    engine: flowforge.Engine,
) -> None:
    code = (
        "class QuotaExceeded(Exception):\n    pass\n\n"
        "def f():\n    raise QuotaExceeded('no more')\n\nf()"
    )

    error = engine.run(_workflow(_code(code))).block("c").error

    assert error == {
        "type": "QuotaExceeded",
        "message": "no more (line 5: raise QuotaExceeded('no more'))",
    }


@pytest.mark.parametrize(
    ("code", "error_type", "message"),
    [
        ("x = 1", "MissingResult", "did not set the variable `result`"),
        ("result = {1, 2}", "ResultNotSerializable", "Object of type set is not JSON serializable"),
        ("result = object()", "ResultNotSerializable", "not JSON-serialisable"),
        ("result = float('nan')", "ResultNotSerializable", "Out of range float values"),
        ("result = 'a\\x00b'", "ResultNotSerializable", "NUL character"),
        ("x = (\nresult = 1", "SyntaxError", "line 1"),
        ("import os\nresult = os.getcwd()", "InsecureCode", "line 1: import of module 'os'"),
        ("import nosuchmodule\nresult = 1", "InsecureCode", "module 'nosuchmodule' is not allowed"),
    ],
    ids=["missing", "set", "object", "nan", "nul", "syntax", "insecure", "unknown-module"],
)
def test_errors_that_another_attempt_cannot_fix_are_not_retried(
    engine: flowforge.Engine, code: str, error_type: str, message: str
) -> None:
    block = engine.run(_workflow(_code(code, retry=RETRY))).block("c")

    assert block.status == "failed"
    assert block.attempts == 1
    assert block.error is not None
    assert block.error["type"] == error_type
    assert message in block.error["message"]


def test_the_static_check_lists_every_violation_with_its_line(engine: flowforge.Engine) -> None:
    code = "import os\nx = 1\nf = open\ny = ().__class__\nimport socket"

    error = engine.run(_workflow(_code(code))).block("c").error

    assert error is not None and error["type"] == "InsecureCode"
    assert "(4 problem(s))" in error["message"]
    for expected in (
        "line 1: import of module 'os' is not allowed",
        "line 3: 'open' is not allowed",
        "line 4: the attribute '__class__' is not allowed",
        "line 5: import of module 'socket' is not allowed",
    ):
        assert expected in error["message"]
    assert "FLOWFORGE_CODE_ALLOWED_MODULES" in error["message"]


def test_invalid_fields_are_definition_errors() -> None:
    for bad in (
        {"id": "c", "type": "code"},
        {"id": "c", "type": "code", "code": ""},
        {"id": "c", "type": "code", "code": "result = 1", "inputs": [1, 2]},
        {"id": "c", "type": "code", "code": "result = 1", "environment": {}},
    ):
        with pytest.raises(DefinitionError):
            flowforge.Workflow.from_dict({"id": "bad", "blocks": [bad]})


# -- the allow-list ------------------------------------------------------------------------------

GRAPH = (
    "from graphlib import TopologicalSorter\n"
    "result = list(TopologicalSorter({'b': {'a'}}).static_order())"
)


def test_the_policy_extends_the_allow_list(engine: flowforge.Engine) -> None:
    refused = engine.run(_workflow(_code(GRAPH))).block("c")
    assert refused.error is not None and refused.error["type"] == "InsecureCode"

    engine.policy = replace(
        flowforge.BlockPolicy.local(), code_extra_modules=frozenset({"graphlib"})
    )

    assert engine.run(_workflow(_code(GRAPH))).block("c").output == ["a", "b"]


def test_flowforge_code_allowed_modules_extends_the_allow_list(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_CODE_ALLOWED_MODULES", "graphlib, fnmatch")

    assert engine.run(_workflow(_code(GRAPH))).block("c").output == ["a", "b"]


def test_allowed_modules_do_not_hand_out_the_modules_they_imported(
    engine: flowforge.Engine,
) -> None:
    wf = _workflow(
        _code("import uuid\nresult = str(uuid.os)", "via_uuid", continue_on_failure=True),
        _code("import typing\nresult = str(typing.sys)", "via_typing", continue_on_failure=True),
        _code("import random\nresult = str(random._inst)", "private", continue_on_failure=True),
        _code(
            "import collections.abc\nfrom urllib import parse\n"
            "result = [collections.abc.Mapping.__name__, parse.quote('a b')]",
            "submodules",
        ),
    )

    result = engine.run(wf)

    for block_id, missing in (("via_uuid", "os"), ("via_typing", "sys"), ("private", "_inst")):
        error = result.block(block_id).error
        assert error is not None and error["type"] == "AttributeError"
        assert f"has no attribute '{missing}' in a code block" in error["message"]
    assert result.block("submodules").output == ["Mapping", "a%20b"]


# -- the block log -------------------------------------------------------------------------------


def test_stdout_lines_are_info_and_stderr_lines_are_warnings_in_the_block_log(
    engine: flowforge.Engine,
) -> None:
    code = "print('out one')\nprint('out two\\nout three', end='')\nresult = inputs['n']"
    wf = _workflow(
        _code(code, "printer", inputs={"n": 1}),
        _code("raise RuntimeError('to stderr')", "failing", continue_on_failure=True),
    )

    result = engine.run(wf)

    lines = [(line.level, line.message) for line in engine.logs(result.run_id, "printer")]
    assert lines[0][0] == "INFO" and lines[0][1].startswith("sandbox: ")
    assert [x for x in lines if not x[1].startswith(("sandbox: ", "process "))] == [
        ("INFO", "out one"),
        ("INFO", "out two"),
        ("INFO", "out three"),
    ]
    failing = [(line.level, line.message) for line in engine.logs(result.run_id, "failing")]
    assert ("WARNING", "RuntimeError: to stderr") in failing


def test_output_past_the_limit_is_cut_with_a_note_and_fails_the_block(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_CODE_OUTPUT_BYTES", "2048")
    code = "for i in range(100_000):\n    print(f'line {i:05d} ' + 'x' * 40)"

    result = engine.run(_workflow(_code(code, retry=RETRY)))

    block = result.block("c")
    assert block.error is not None and block.error["type"] == "ResourceLimit"
    assert "printed more than 2048 bytes" in block.error["message"]
    assert block.attempts == 1
    messages = [line.message for line in engine.logs(result.run_id, "c")]
    printed = [m for m in messages if m.startswith("line ")]
    assert printed[0] == "line 00000 " + "x" * 40
    assert 30 <= len(printed) <= 50  # about 2048 bytes of 51-byte lines
    assert any(m.startswith("output truncated") for m in messages)


# -- stopping the process ------------------------------------------------------------------------


def test_the_block_timeout_kills_the_process_and_removes_the_scratch_directory(
    engine: flowforge.Engine,
) -> None:
    code = "import time\nprint('started')\nwhile True:\n    time.sleep(0.05)"
    started = time.monotonic()

    result = engine.run(_workflow(_code(code, timeout="1s")))

    assert time.monotonic() - started < 8
    block = result.block("c")
    assert block.error is not None and block.error["type"] == "Timeout"
    assert not _processes_of(result.run_id)
    assert not _scratch_directories(engine, result.run_id)


def _scratch_directories(engine: flowforge.Engine, run_id: str) -> list[Path]:
    """The scratch directories the run's attempts logged that still exist."""
    found = []
    for line in engine.logs(run_id):
        match = re.search(r" in (/\S+flowforge-code-\S+)$", line.message)
        if match:
            found.append(Path(match.group(1)))
    assert found, "the block logs its scratch directory"
    return [path for path in found if path.exists()]


def test_the_wall_time_limit_kills_a_sleeping_process(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_CODE_WALL_SECONDS", "1")

    result = engine.run(_workflow(_code("import time\ntime.sleep(30)", retry=RETRY)))

    block = result.block("c")
    assert block.error is not None and block.error["type"] == "ResourceLimit"
    assert "wall-time limit of 1s" in block.error["message"]
    assert block.attempts == 1
    assert not _processes_of(result.run_id)


def test_the_cpu_time_limit_stops_a_busy_loop(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_CODE_CPU_SECONDS", "1")

    error = engine.run(_workflow(_code("while True:\n    pass"))).block("c").error

    assert error == {
        "type": "ResourceLimit",
        "message": "the code used more than its CPU-time limit of 1s",
    }


def test_the_memory_limit_stops_a_growing_process(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_CODE_MEMORY_MB", "128")

    error = engine.run(_workflow(_code("x = ' ' * (200 * 1024 * 1024)"))).block("c").error

    assert error == {
        "type": "ResourceLimit",
        "message": "the code used more than its memory limit of 128 MiB",
    }


async def test_canceling_the_run_kills_the_code_at_once(engine: flowforge.Engine) -> None:
    code = "import time\nwhile True:\n    time.sleep(0.05)"
    created: list[str] = []
    task = asyncio.create_task(engine.run_async(_workflow(_code(code)), on_created=created.append))
    await async_wait_until(lambda: created and _processes_of(created[0]), 10, "the sandbox")

    canceled_at = time.monotonic()
    engine.cancel(created[0])
    result = await asyncio.wait_for(task, 8)

    assert result.status == "canceled"
    assert time.monotonic() - canceled_at < 3, "no waiting for the cancel grace"
    await async_wait_until(lambda: not _processes_of(created[0]), 5, "the sandbox to end")


def test_the_scratch_directory_is_the_working_directory_and_is_deleted_afterwards(
    engine: flowforge.Engine,
) -> None:
    engine.policy = replace(
        flowforge.BlockPolicy.local(), code_extra_modules=frozenset({"pathlib"})
    )
    code = (
        "import pathlib\n"
        "here = pathlib.Path.cwd()\n"
        "(here / 'note.txt').write_text('kept for the attempt')\n"
        "files = sorted(p.name for p in here.iterdir())\n"
        "result = {'files': files, 'text': pathlib.Path('note.txt').read_text()}"
    )

    result = engine.run(_workflow(_code(code)))

    assert result.block("c").output == {"files": ["note.txt"], "text": "kept for the attempt"}
    assert not _scratch_directories(engine, result.run_id)


# -- isolation kinds -----------------------------------------------------------------------------


def _kind_or_skip(kind: str) -> sandbox_isolation.Isolation:
    try:
        return sandbox_isolation.detect(kind)
    except flowforge.FlowforgeError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("kind", ["bubblewrap", "unshare", "process"])
def test_each_isolation_kind_runs_code_and_says_what_contains_it(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    isolation = _kind_or_skip(kind)
    monkeypatch.setenv("FLOWFORGE_CODE_ISOLATION", kind)
    monkeypatch.setenv("FLOWFORGE_TEST_CANARY", "canary-of-the-engine")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    port = server.getsockname()[1]
    code = (
        "import os, socket\nprint('computing')\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
        "    reached = True\nexcept OSError:\n    reached = False\n"
        "result = {'sum': sum(inputs['values']), 'reached': reached, 'env': dict(os.environ)}"
    )
    modules = frozenset({"socket", "os"})
    policy = replace(flowforge.BlockPolicy.local(), code_extra_modules=modules)
    with server, flowforge.Engine(sqlite_url, policy=policy) as engine:
        result = engine.run(_workflow(_code(code, inputs={"values": [1, 2, 3]})))
        logs = [(line.level, line.message) for line in engine.logs(result.run_id)]

    output = result.block("c").output
    assert output["sum"] == 6
    assert output["reached"] is not isolation.network_isolated
    assert set(output["env"]) <= {"PWD", "LC_CTYPE"}, "the engine's environment is not passed"
    assert ("INFO", "computing") in logs
    ((level, message),) = [x for x in logs if x[1].startswith("sandbox: ")]
    assert message.startswith(f"sandbox: {kind}, ")
    assert ("no network" in message) == isolation.network_isolated
    assert level == ("WARNING" if isolation.degraded else "INFO")


def test_a_required_isolation_kind_that_is_unknown_fails_the_block(
    engine: flowforge.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWFORGE_CODE_ISOLATION", "vm")

    error = engine.run(_workflow(_code("result = 1"))).block("c").error

    assert error is not None and error["type"] == "SandboxError"
    assert "FLOWFORGE_CODE_ISOLATION='vm'" in error["message"]
