"""The resource limits of a ``code`` block's process, set by the operator's environment.

==================================  =========  ==============================================
variable                            default    limit
==================================  =========  ==============================================
``FLOWFORGE_CODE_CPU_SECONDS``      30         CPU time (``RLIMIT_CPU``; killed 2 s later)
``FLOWFORGE_CODE_MEMORY_MB``        512        address space (``RLIMIT_AS``)
``FLOWFORGE_CODE_WALL_SECONDS``     300        wall time, then the process is killed
``FLOWFORGE_CODE_OUTPUT_BYTES``     1048576    stdout and stderr together, then killed
``FLOWFORGE_CODE_RESULT_BYTES``     16777216   the JSON of ``result``
``FLOWFORGE_CODE_MAX_PROCESSES``    16         processes (``RLIMIT_NPROC``, see the docs)
``FLOWFORGE_CODE_FILE_MB``          16         size of one written file (``RLIMIT_FSIZE``)
``FLOWFORGE_CODE_OPEN_FILES``       64         open file descriptors (``RLIMIT_NOFILE``)
==================================  =========  ==============================================

A block's own ``timeout`` also ends the process when it is shorter than the wall-time limit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from flowforge.errors import ConfigurationError

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    cpu_seconds: int = 30
    memory_bytes: int = 512 * MIB
    wall_seconds: float = 300.0
    output_bytes: int = MIB
    result_bytes: int = 16 * MIB
    processes: int = 16
    file_size_bytes: int = 16 * MIB
    open_files: int = 64

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxLimits:
        """The defaults, overridden by the ``FLOWFORGE_CODE_*`` variables of ``env``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, key, scale, minimum in _VARIABLES:
            raw = env.get(name, "").strip()
            if not raw:
                continue
            try:
                number = float(raw)
            except ValueError:
                number = float("nan")
            if not number >= minimum:
                raise ConfigurationError(f"{name}={raw!r}: use a number of at least {minimum}")
            values[key] = number * scale if key == "wall_seconds" else int(number * scale)
        return cls(**values)

    def for_child(self, *, die_with_parent: bool) -> dict[str, Any]:
        """What the runner sets in the child (``runner._set_limits``)."""
        limits: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("wall_seconds", "output_bytes", "result_bytes")
        }
        limits["die_with_parent"] = die_with_parent
        return limits

    def describe(self) -> str:
        return (
            f"CPU {self.cpu_seconds}s, memory {self.memory_bytes // MIB} MiB, "
            f"wall {self.wall_seconds:g}s, output {format_size(self.output_bytes)}, "
            f"processes {self.processes}, file size {format_size(self.file_size_bytes)}, "
            f"open files {self.open_files}"
        )


_VARIABLES: list[tuple[str, str, int, float]] = [
    ("FLOWFORGE_CODE_CPU_SECONDS", "cpu_seconds", 1, 1),
    ("FLOWFORGE_CODE_MEMORY_MB", "memory_bytes", MIB, 32),
    ("FLOWFORGE_CODE_WALL_SECONDS", "wall_seconds", 1, 0.1),
    ("FLOWFORGE_CODE_OUTPUT_BYTES", "output_bytes", 1, 1024),
    ("FLOWFORGE_CODE_RESULT_BYTES", "result_bytes", 1, 1024),
    ("FLOWFORGE_CODE_MAX_PROCESSES", "processes", 1, 1),
    ("FLOWFORGE_CODE_FILE_MB", "file_size_bytes", MIB, 1),
    ("FLOWFORGE_CODE_OPEN_FILES", "open_files", 1, 16),
]


def format_size(value: int) -> str:
    if value % MIB == 0:
        return f"{value // MIB} MiB"
    return f"{value} bytes"
