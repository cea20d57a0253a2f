"""Stored workflows and their versions: runs are pinned to the version they start with."""

from __future__ import annotations

import pytest

import flowforge
from flowforge.definition.workflow import Workflow


def _version(value: int) -> Workflow:
    return Workflow.from_dict(
        {"id": "versioned", "blocks": [{"id": "answer", "type": "transform", "value": value}]}
    )


def test_a_run_started_from_a_stored_version_keeps_it(store_url: str) -> None:
    with flowforge.Engine(store_url) as engine:
        assert engine.apply(_version(1)) == 1
        assert engine.apply(_version(1)) == 1  # unchanged: no new version
        assert engine.apply(_version(2)) == 2
        pinned = engine.start("versioned", version=1)
        latest = engine.start("versioned")
        assert (pinned.workflow_version, latest.workflow_version) == (1, 2)
        assert engine.resume(pinned.run_id).outputs == {"answer": 1}
        assert engine.resume(latest.run_id).outputs == {"answer": 2}
        # starting from the store creates no version
        assert [v["version"] for v in engine.store.list_versions("versioned")] == [1, 2]


def test_starting_an_unknown_workflow_or_version_says_which(store_url: str) -> None:
    with flowforge.Engine(store_url) as engine:
        engine.apply(_version(1))
        with pytest.raises(flowforge.NotFoundError, match="has no version 7"):
            engine.start("versioned", version=7)
        with pytest.raises(flowforge.NotFoundError, match="nope does not exist"):
            engine.start("nope")
