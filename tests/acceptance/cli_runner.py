"""Running the real ``flowforge`` command in subprocesses, for the acceptance tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCRIPT = Path(sys.executable).parent / "flowforge"


def flowforge_command() -> list[str]:
    """The installed console script, else ``python -m flowforge``."""
    return [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "flowforge"]


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (
            f"flowforge {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


class Cli:
    """Runs ``flowforge`` with a home, a store and a module directory of the test's own."""

    def __init__(self, tmp_path: Path, database_url: str | None = None) -> None:
        self.dir = tmp_path
        self.home = tmp_path / "home"
        self.modules = tmp_path / "modules"
        self.modules.mkdir(exist_ok=True)
        self.database_url = database_url or f"sqlite:///{tmp_path / 'flowforge.db'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWFORGE_")}
        self.env.update(
            {
                "FLOWFORGE_HOME": str(self.home),
                "FLOWFORGE_DATABASE_URL": self.database_url,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(self.modules), os.environ.get("PYTHONPATH")) if p
                ),
            }
        )

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def module(self, name: str, text: str) -> Path:
        path = self.modules / f"{name}.py"
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def command(self, *args: str | Path) -> list[str]:
        return [*flowforge_command(), *map(str, args)]

    def __call__(
        self, *args: str | Path, timeout: float = 60, env: dict[str, str] | None = None
    ) -> Result:
        done = subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.dir,
            timeout=timeout,
        )
        return Result([str(a) for a in args], done.returncode, done.stdout, done.stderr)


def wait_for(predicate: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true (returned), with a deadline."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
