"""How a ``code`` block's process is isolated on this machine, found out once per process.

Three kinds, strongest first (``FLOWFORGE_CODE_ISOLATION``: ``auto`` — the default: the first
that works —, ``bubblewrap``, ``unshare`` or ``process`` to require one):

``bubblewrap``
    ``bwrap`` with new network, pid, ipc and uts namespaces and a private filesystem view: the
    Python installation and the system libraries read-only, a fresh ``/proc`` and ``/dev``,
    the scratch directory as ``/scratch`` and nothing else (no ``/home``, ``/root``, ``/etc``,
    no store file).
``unshare``
    util-linux ``unshare`` with new user, network, pid (with its own ``/proc``), mount, ipc and
    uts namespaces: no network and no view of other processes, but the filesystem is the
    engine's, readable as the engine's user.
``process``
    a plain child process: resource limits, an empty environment and the scratch directory as
    its working directory only.

In every kind the process gets no environment variable, its own session, and the resource
limits of ``SandboxLimits``. When the engine runs as root, the code must not run as root: with
``setpriv`` (util-linux) it runs under a user id of its own, picked at random per attempt
from a range no account uses, so ``RLIMIT_NPROC`` counts its processes only (the kernel
does not apply that limit to root, even inside a user namespace). In the ``bubblewrap`` kind
that always works; in the others only when the Python interpreter is reachable by other users.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flowforge.errors import ConfigurationError

Kind = Literal["bubblewrap", "unshare", "process"]
KINDS: tuple[Kind, ...] = ("bubblewrap", "unshare", "process")
ISOLATION_VARIABLE = "FLOWFORGE_CODE_ISOLATION"
SANDBOX_UID_BASE = 1_800_000_000
SANDBOX_UID_SPAN = 100_000_000
"""Per-attempt user ids are drawn from [base, base + span): far above any account's id."""
NOBODY = 65534
SCRATCH_IN_SANDBOX = "/scratch"
PYTHON_FLAGS = ("-I", "-S", "-B", "-u", "-X", "utf8")
"""Isolated (no PYTHON* variables, no user site, no current directory on the path), no
``site``, no bytecode written, unbuffered output (what was printed before a kill is kept)."""


@dataclass(frozen=True, slots=True)
class Isolation:
    """One way of starting the child process, known to work on this machine."""

    kind: Kind
    python: str
    tool: str | None = None
    """``bwrap`` or ``unshare``: the absolute path."""
    setpriv: str | None = None
    """Set when the engine is root: the child switches to a per-attempt user id with it."""

    @property
    def network_isolated(self) -> bool:
        return self.kind != "process"

    @property
    def private_filesystem(self) -> bool:
        return self.kind == "bubblewrap"

    @property
    def process_limit_applies(self) -> bool:
        """Whether ``RLIMIT_NPROC`` binds: never for root's processes, even in a namespace."""
        return os.geteuid() != 0 or self.setpriv is not None

    def sandbox_uid(self) -> int | None:
        """The user id of one attempt (None: the engine's own, or a user namespace's)."""
        if self.setpriv is None:
            return None
        return SANDBOX_UID_BASE + secrets.randbelow(SANDBOX_UID_SPAN)

    def describe(self) -> str:
        """What contains the code, for the block's log."""
        parts: list[str] = [self.kind]
        parts.append("no network" if self.network_isolated else "NETWORK REACHABLE")
        if self.private_filesystem:
            parts.append("private filesystem view")
        else:
            parts.append(f"FILESYSTEM READABLE as {self._who()}")
        if self.kind != "process":
            parts.append("own pid namespace")
        if not self.process_limit_applies:
            parts.append("process count NOT limited (root)")
        return ", ".join(parts)

    @property
    def degraded(self) -> bool:
        return not (self.private_filesystem and self.process_limit_applies)

    def _who(self) -> str:
        if self.setpriv is not None:
            return "a per-attempt user id"
        return "root" if os.geteuid() == 0 else "the engine's user"

    def command(
        self, runner_source: str, runner_args: list[str], scratch: Path, uid: int | None
    ) -> list[str]:
        """The argv that runs ``runner_source`` (with ``runner_args``) in this isolation."""
        python = [self.python, *PYTHON_FLAGS, "-c", runner_source, *runner_args]
        if uid is not None:
            assert self.setpriv is not None
            python = [
                self.setpriv,
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                *python,
            ]
        if self.kind == "bubblewrap":
            assert self.tool is not None
            return [self.tool, *_bwrap_arguments(self, scratch), "--", *python]
        if self.kind == "unshare":
            assert self.tool is not None
            user = [] if uid is not None else ["--user", f"--map-user={NOBODY}"]
            user += [] if uid is not None else [f"--map-group={NOBODY}"]
            namespaces = ["--net", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc"]
            return [self.tool, *user, *namespaces, "--ipc", "--uts", "--", *python]
        return python

    def working_directory(self, scratch: Path) -> str:
        """The child's working directory as the code sees it."""
        return SCRATCH_IN_SANDBOX if self.kind == "bubblewrap" else str(scratch)


def _bwrap_arguments(isolation: Isolation, scratch: Path) -> list[str]:
    args = [
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
    ]
    if isolation.setpriv is None:
        # not root (or no setpriv): a user namespace, as nobody, without capabilities
        args += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
    args += _system_view()
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--bind", str(scratch), SCRATCH_IN_SANDBOX, "--chdir", SCRATCH_IN_SANDBOX]
    return args


_SYSTEM_VIEW: list[str] | None = None


def _system_view() -> list[str]:
    """Read-only binds of what the interpreter needs: /usr, the libraries, Python itself."""
    global _SYSTEM_VIEW
    if _SYSTEM_VIEW is not None:
        return _SYSTEM_VIEW
    args = ["--ro-bind", "/usr", "/usr"]
    bound = [Path("/usr")]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
            bound.append(path)
    python_dirs = [
        Path(sys.base_prefix).resolve(),
        Path(os.path.realpath(sys.executable)).parent,
        Path(sysconfig.get_config_var("LIBDIR") or sys.base_prefix).resolve(),
    ]
    made: set[Path] = set()
    for path in python_dirs:
        if path.is_dir() and not any(path == b or b in path.parents for b in bound):
            args += [*_parents(path, made), "--ro-bind", str(path), str(path)]
            bound.append(path)
    args += _parents(Path("/etc/x"), made)
    for extra in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", extra, extra]
    _SYSTEM_VIEW = args
    return args


def _parents(path: Path, made: set[Path]) -> list[str]:
    """Create ``path``'s parent directories 0755: bwrap would make them 0700 (as root), and the
    code's user id could not reach the interpreter (``/root/.pyenv/…``)."""
    args: list[str] = []
    for parent in reversed(path.parents):
        if parent != Path("/") and parent not in made:
            args += ["--perms", "0755", "--dir", str(parent)]
            made.add(parent)
    return args


def _reachable_by_others(path: Path) -> bool:
    """Whether a user with no relation to the owner can execute ``path`` (every parent: o+x)."""
    try:
        for parent in path.parents:
            if not parent.stat().st_mode & stat.S_IXOTH:
                return False
        return bool(path.stat().st_mode & stat.S_IXOTH)
    except OSError:
        return False


def _plan(kind: Kind, python: str) -> Isolation | None:
    root = os.geteuid() == 0
    setpriv = shutil.which("setpriv") if root else None
    if kind == "bubblewrap":
        tool = shutil.which("bwrap")
        return None if tool is None else Isolation(kind, python, tool, setpriv)
    if setpriv is not None and not _reachable_by_others(Path(python)):
        setpriv = None
    if kind == "unshare":
        tool = shutil.which("unshare")
        return None if tool is None else Isolation(kind, python, tool, setpriv)
    return Isolation(kind, python, None, setpriv)


def _probe(isolation: Isolation) -> str | None:
    """Start a trivial child in ``isolation``: None when it works, else why not."""
    scratch = Path(tempfile.mkdtemp(prefix="flowforge-probe-"))
    try:
        uid = isolation.sandbox_uid()
        if uid is not None:
            os.chown(scratch, uid, uid)
        probe = "import os, sys; print(os.getcwd()); print(sys.version); print(sys.prefix)"
        argv = isolation.command(probe, [], scratch, uid)
        done = subprocess.run(
            argv, env={}, cwd=scratch, capture_output=True, timeout=20, stdin=subprocess.DEVNULL
        )
        expected = [isolation.working_directory(scratch), sys.version, sys.base_prefix]
        if done.returncode != 0 or done.stdout.decode().splitlines() != expected:
            error = done.stderr.decode(errors="replace").strip()[-500:]
            seen = done.stdout.decode(errors="replace").strip()[-300:]
            return f"exit status {done.returncode}: {error or f'{seen!r} instead of {expected!r}'}"
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


_DETECTED: dict[str, Isolation] = {}
_LOCK = threading.Lock()


def _wanted(requested: str | None) -> str:
    return (requested or os.environ.get(ISOLATION_VARIABLE) or "auto").strip().lower()


def known(requested: str | None = None) -> Isolation | None:
    """What ``detect`` found already for this setting, without probing (None: not yet)."""
    return _DETECTED.get(_wanted(requested))


def detect(requested: str | None = None) -> Isolation:
    """The isolation to use (cached): ``requested`` or ``FLOWFORGE_CODE_ISOLATION``.

    The first call for a setting starts a trivial child in each candidate (tens of
    milliseconds). Raises ``ConfigurationError`` when a required kind does not work here.
    """
    wanted = _wanted(requested)
    if wanted not in ("auto", *KINDS):
        raise ConfigurationError(
            f"{ISOLATION_VARIABLE}={wanted!r}: use auto, bubblewrap, unshare or process"
        )
    with _LOCK:
        found = _DETECTED.get(wanted)
        if found is not None:
            return found
        python = os.path.realpath(sys.executable)
        reasons = []
        for kind in [k for k in KINDS if wanted in ("auto", k)]:
            isolation = _plan(kind, python)
            if isolation is None:
                reasons.append(f"{kind}: not installed")
                continue
            problem = _probe(isolation)
            if problem is None:
                _DETECTED[wanted] = isolation
                return isolation
            reasons.append(f"{kind}: {problem}")
        raise ConfigurationError(
            f"{ISOLATION_VARIABLE}={wanted}: not available on this machine ({'; '.join(reasons)})"
        )
