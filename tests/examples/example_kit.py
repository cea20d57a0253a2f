"""Helpers of the example tests: ``flowforge run`` of an example, and a doc page's excerpts."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FROM_EXAMPLE = re.compile(r"<!-- from (examples/\S+) -->\n```\w*\n(.*?)```", re.DOTALL)


def flowforge_run(
    example: Path, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``flowforge run EXAMPLE ARGS`` from the repository root, with a home of its own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLOWFORGE_")}
    clean.update({"FLOWFORGE_HOME": str(home), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "flowforge", "run", str(example.relative_to(ROOT)), *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_page_shows_the_example(page: Path, minimum: int) -> None:
    """The page has at least ``minimum`` verbatim excerpts of examples, and every file it names
    exists."""
    text = page.read_text()
    excerpts = FROM_EXAMPLE.findall(text)
    assert len(excerpts) >= minimum, f"{page.name}: {len(excerpts)} excerpt(s)"
    for path, code in excerpts:
        assert code in (ROOT / path).read_text(), f"{page.name}: excerpt of {path} is out of date"
    for path in re.findall(r"(?<![\w/])(?:examples|tests)/[\w/.-]+\.(?:yaml|py)", text):
        assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"


@contextlib.contextmanager
def example_server(script: Path) -> Iterator[str]:
    """Run an example's local server (``SCRIPT --port 0``); yield the base URL it prints."""
    server = subprocess.Popen(
        [sys.executable, str(script), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        server.terminate()
        server.wait(10)
