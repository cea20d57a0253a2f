"""``flowforge workflows``: stored workflow definitions and their versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from flowforge.cli.console import fail, out, print_json, short_time, table
from flowforge.cli.options import DatabaseUrl, Json

if TYPE_CHECKING:
    from flowforge.store import SqlStore

T = TypeVar("T")
app = typer.Typer(help="Manage stored workflows.", no_args_is_help=True)
WorkflowId = Annotated[str, typer.Argument(metavar="ID", help="Workflow id.")]


@app.command("apply")
def apply(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Workflow definition (YAML/JSON).")],
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Store a definition; a changed one becomes a new version, an unchanged one does not."""
    from flowforge.definition.workflow import load
    from flowforge.settings import database_url as resolve_url
    from flowforge.store import open_store

    workflow = load(file)
    store = open_store(resolve_url(database_url))
    try:
        version, created = store.save_workflow(
            workflow.id, workflow.spec.title, workflow.to_dict(), workflow.digest
        )
    finally:
        store.close()
    if json_output:
        print_json({"workflow_id": workflow.id, "version": version, "created": created})
    else:
        state = "created" if created else "unchanged"
        out(f"{workflow.id} version {version} ({state})")


@app.command("list")
def list_(json_output: Json = False, database_url: DatabaseUrl = None) -> None:
    """List stored workflows with their latest version."""
    rows = _store_call(database_url, lambda s: s.list_workflows())
    if json_output:
        print_json(rows)
        return
    table(
        ["ID", "VERSION", "TITLE", "UPDATED"],
        [
            [r["workflow_id"], r["latest_version"], r["title"] or "", short_time(r["updated_at"])]
            for r in rows
        ],
    )


@app.command("show")
def show(
    workflow_id: WorkflowId,
    version: Annotated[int | None, typer.Option("--version", help="Default: latest.")] = None,
    json_output: Json = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print a workflow's definition (YAML, or a JSON record with --json)."""
    found = _store_call(database_url, lambda s: s.get_workflow_version(workflow_id, version))
    if found is None:
        which = f" version {version}" if version is not None else ""
        fail(f"workflow {workflow_id}{which} does not exist")
    number, definition = found
    if json_output:
        print_json({"workflow_id": workflow_id, "version": number, "definition": definition})
        return
    from flowforge.definition.serialize import to_yaml

    out(f"# {workflow_id} version {number}")
    out(to_yaml(definition).rstrip("\n"))


@app.command("versions")
def versions(
    workflow_id: WorkflowId, json_output: Json = False, database_url: DatabaseUrl = None
) -> None:
    """List the versions of a workflow."""
    rows = _store_call(database_url, lambda s: s.list_versions(workflow_id))
    if not rows:
        fail(f"workflow {workflow_id} does not exist")
    if json_output:
        print_json([{"workflow_id": workflow_id, **r} for r in rows])
        return
    table(
        ["VERSION", "DIGEST", "CREATED"],
        [[r["version"], r["digest"][:12], short_time(r["created_at"])] for r in rows],
    )


@app.command("delete")
def delete(workflow_id: WorkflowId, database_url: DatabaseUrl = None) -> None:
    """Delete a workflow (its runs and the versions they use are kept)."""
    if not _store_call(database_url, lambda s: s.delete_workflow(workflow_id)):
        fail(f"workflow {workflow_id} does not exist")
    out(f"deleted {workflow_id}")


def _store_call(database_url: str | None, fn: Callable[[SqlStore], T]) -> T:
    from flowforge.settings import database_url as resolve_url
    from flowforge.store import open_store

    store = open_store(resolve_url(database_url))
    try:
        return fn(store)
    finally:
        store.close()
