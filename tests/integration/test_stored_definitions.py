"""Runs stay readable in a process that lacks a custom block type they used."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_a_run_of_a_custom_type_is_shown_by_a_process_without_that_type(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ff.db'}"
    writer = textwrap.dedent(f"""
        import flowforge

        @flowforge.block_type("shout")
        class Shout(flowforge.Block):
            text: str
            async def run(self, ctx):
                return self.text.upper()

        wf = flowforge.Workflow("custom")
        wf.add({{"id": "loud", "type": "shout", "text": "hi"}})
        result = flowforge.run(wf, database_url={url!r})
        print(result.run_id)
    """)
    done = subprocess.run(
        [sys.executable, "-c", writer], capture_output=True, text=True, check=True
    )
    run_id = done.stdout.strip()

    import flowforge

    with flowforge.Engine(url) as engine:
        shown = engine.get(run_id)
        listed = engine.list()
    assert shown.status == "completed"
    assert shown.block("loud").output == "HI"
    assert shown.block("loud").type == "shout"
    assert [run.run_id for run in listed] == [run_id]
