"""Custom block types from installed packages: the ``flowforge.blocks`` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path


def _install_fake_distribution(root: Path) -> None:
    """A package with a block type, made discoverable the way pip installs it (dist-info)."""
    (root / "shoutblocks.py").write_text(
        textwrap.dedent("""
        import flowforge

        class Shout(flowforge.Block):
            text: str

            async def run(self, ctx):
                return self.text.upper() + "!"
    """)
    )
    dist = root / "shoutblocks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shoutblocks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[flowforge.blocks]\nshout = shoutblocks:Shout\n")


def test_a_block_type_from_an_entry_point_is_validated_and_runs(tmp_path: Path) -> None:
    _install_fake_distribution(tmp_path)
    workflow = tmp_path / "shout.yaml"
    workflow.write_text(
        textwrap.dedent("""
        id: shouting
        blocks:
          - id: loud
            type: shout
            text: "{{ params.word }}"
        parameters:
          word: {type: string, default: hello}
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "FLOWFORGE_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "flowforge", "run", str(workflow), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["outputs"] == {"loud": "HELLO!"}
    assert record["blocks"][0]["type"] == "shout"


def test_a_bad_field_of_an_entry_point_type_is_a_validation_error(tmp_path: Path) -> None:
    _install_fake_distribution(tmp_path)
    workflow = tmp_path / "bad.yaml"
    workflow.write_text("id: shouting\nblocks:\n  - id: loud\n    type: shout\n    txt: x\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "FLOWFORGE_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "flowforge", "validate", str(workflow)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "blocks[0]" in done.stdout + done.stderr
    assert "line 3" in done.stdout + done.stderr or "line 5" in done.stdout + done.stderr
