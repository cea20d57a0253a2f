"""The package's shape: layers import downwards only, and the public API is explicit."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import flowforge

SRC = Path(flowforge.__file__).parent

# a layer may import from itself and the layers after it (plus the shared leaf modules)
LAYERS = ["cli", "embedded", "worker", "store", "blocks", "engine", "definition"]
FORBIDDEN_EXTERNAL = {
    "definition": {"sqlalchemy", "alembic", "psycopg", "sqlite3", "typer", "rich"},
    "engine": {"sqlalchemy", "alembic", "psycopg", "sqlite3", "typer", "rich"},
    "blocks": {"sqlalchemy", "alembic", "psycopg", "sqlite3", "typer", "rich"},
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "flowforge" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_layers_import_downwards_only() -> None:
    wrong = []
    for path in SRC.rglob("*.py"):
        module = "flowforge." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        own = _layer(module)
        if own is None:
            continue
        for imported in _imports(path):
            target = _layer(imported)
            if target is not None and LAYERS.index(target) < LAYERS.index(own):
                wrong.append(f"{module} imports {imported}")
            root = imported.split(".")[0]
            if root in FORBIDDEN_EXTERNAL.get(own, set()):
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_public_api_is_sorted_and_every_name_resolves() -> None:
    assert flowforge.__all__ == sorted(flowforge.__all__)
    for name in flowforge.__all__:
        assert getattr(flowforge, name) is not None, name


def test_sqlalchemy_is_not_imported_to_run_a_workflow(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys, flowforge\n"
        "wf = flowforge.Workflow('w')\n"
        "wf.add({'id': 'a', 'type': 'transform', 'value': 1})\n"
        f"flowforge.run(wf, database_url='sqlite:///{tmp_path}/x.db')\n"
        "print('sqlalchemy' in sys.modules, 'alembic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "False"]


def test_every_module_imports() -> None:
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if "migrations" in parts or parts[-1] == "__main__":
            continue
        name = ".".join(("flowforge", *parts)).removesuffix(".__init__")
        importlib.import_module(name)
