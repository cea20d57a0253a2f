"""Every example in examples/ runs for real and gives the results its README line promises.

YAML examples run through ``flowforge.load`` and an ``Engine`` on a temp SQLite store, from the
repository root as ``make demo`` does: their ``python`` blocks import modules that sit beside the
workflow file, which SPEC 2.3 puts on the import path. Script examples run in a subprocess with
a temp ``FLOWFORGE_HOME``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import flowforge

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
YAML_EXAMPLES = sorted(EXAMPLES.glob("*/*.yaml"))
SCRIPT_EXAMPLES = [EXAMPLES / "python_api" / "totals.py", EXAMPLES / "custom_block" / "greet.py"]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[flowforge.Engine]:
    with flowforge.Engine(f"sqlite:///{tmp_path}/x.db") as engine:
        yield engine


def statuses(result: flowforge.RunResult) -> dict[str, str]:
    return {block.block_id: block.status for block in result.blocks}


# -- every YAML example ----------------------------------------------------------------------------


def test_there_are_yaml_examples() -> None:
    assert len(YAML_EXAMPLES) >= 4


@pytest.mark.parametrize("path", YAML_EXAMPLES, ids=lambda p: p.name)
def test_yaml_example_round_trips_through_to_yaml(path: Path) -> None:
    workflow = flowforge.load(path)
    again = flowforge.Workflow.from_text(workflow.to_yaml(), source=f"{path.name} (round trip)")
    assert again.to_dict() == workflow.to_dict()
    assert again.digest == workflow.digest


@pytest.mark.parametrize("path", YAML_EXAMPLES, ids=lambda p: p.name)
def test_yaml_example_starts_with_a_readme_line(path: Path) -> None:
    assert path.read_text().startswith("# ")


# -- order_report: the demo ------------------------------------------------------------------------


def test_order_report_demo_completes_with_parallel_fetches_a_retry_and_a_wait(
    engine: flowforge.Engine,
) -> None:
    workflow = flowforge.load(EXAMPLES / "order_report" / "order_report.yaml")

    result = engine.run(workflow, {"order_ids": [1, 2, 3, 4]})  # as `make demo`: waits 2s

    assert result.status == "completed", result.failure_reason
    assert result.outputs is not None
    assert result.outputs["total"] == 154.0
    assert result.outputs["orders"] == 4
    assert result.outputs["flagged"] is True
    assert result.outputs["report"].startswith("4 order(s), total 154.00")
    assert set(statuses(result).values()) == {"completed"}
    assert result.block("inventory").attempts == 2
    assert result.parameters == {"order_ids": [1, 2, 3, 4], "threshold": 100, "settle_for": "2s"}

    events = [(e.type, e.block_id) for e in engine.events(result.run_id)]
    fetches = {"fetch_eu", "fetch_us", "fetch_apac"}
    started = [i for i, (t, b) in enumerate(events) if t == "block.started" and b in fetches]
    first_done = min(
        i for i, (t, b) in enumerate(events) if t == "block.completed" and b in fetches
    )
    assert len(started) == 3 and max(started) < first_done  # the three ran at once
    assert ("block.retrying", "inventory") in events
    assert ("block.waiting", "settle") in events


def test_order_report_params_from_the_command_line_are_coerced(engine: flowforge.Engine) -> None:
    workflow = flowforge.load(EXAMPLES / "order_report" / "order_report.yaml")

    result = engine.run(
        workflow,
        {"order_ids": "[5, 6]", "threshold": "1000", "settle_for": "100ms"},
        from_strings=True,
    )

    assert result.status == "completed", result.failure_reason
    assert result.outputs is not None
    assert result.outputs["orders"] == 2
    assert result.outputs["flagged"] is False


def test_order_report_requires_order_ids(engine: flowforge.Engine) -> None:
    workflow = flowforge.load(EXAMPLES / "order_report" / "order_report.yaml")

    with pytest.raises(flowforge.ParameterError) as caught:
        engine.run(workflow, {})

    assert [p.location for p in caught.value.problems] == ["params.order_ids"]


# -- blocks/tour: one block of each built-in type ------------------------------------------------


def test_block_tour_runs_every_built_in_type(engine: flowforge.Engine) -> None:
    workflow = flowforge.load(EXAMPLES / "blocks" / "tour.yaml")

    result = engine.run(workflow, {})

    assert result.status == "completed", result.failure_reason
    assert result.outputs == {"mean": 6.0, "count": 3}
    assert {b.type for b in result.blocks} == {"transform", "python", "wait", "fail", "noop"}
    assert statuses(result) == {
        "scores": "completed",
        "mean": "completed",
        "cool_down": "completed",
        "too_low": "skipped",
        "done": "completed",
    }


def test_block_tour_guard_fails_the_run(engine: flowforge.Engine) -> None:
    workflow = flowforge.load(EXAMPLES / "blocks" / "tour.yaml")

    result = engine.run(workflow, {"minimum": 7})

    assert result.status == "failed"
    assert result.block("too_low").error == {"type": "Failed", "message": "the mean 6.0 is below 7"}
    assert result.block("done").status == "skipped"


# -- etl -------------------------------------------------------------------------------------------


def test_etl_loads_good_rows_and_tolerates_the_optional_enrichment(
    engine: flowforge.Engine, tmp_path: Path
) -> None:
    workflow = flowforge.load(EXAMPLES / "etl" / "etl.yaml")
    target = tmp_path / "warehouse" / "customers.jsonl"

    result = engine.run(workflow, {"target": str(target)})

    assert result.status == "completed", result.failure_reason
    assert statuses(result) == {
        "extract": "completed",
        "enrich_geo": "failed",  # continue_on_failure: the run goes on
        "clean": "completed",
        "quality_gate": "skipped",  # its `if` is false: 2 rejects is within the limit
        "load": "completed",  # none_failed: a skipped gate is fine
        "alert": "skipped",  # one_failed: nothing failed
        "report": "completed",  # all_done
    }
    assert result.block("enrich_geo").error == {
        "type": "ConnectionError",
        "message": "geo lookup service is unreachable (simulated outage)",
    }
    assert result.outputs is not None
    report = result.outputs["report"]
    assert report["extracted"] == 6 and report["loaded"] == 4
    assert report["enriched"] is False and report["alerted"] is False
    assert [r["id"] for r in report["rejected"]] == [3, 4]
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 5, 6]
    assert rows[0] == {
        "id": 1,
        "name": "Ada Lovelace",
        "email": "ada@example.org",
        "country": "FR",
        "spent": 120.5,
    }


def test_etl_enriches_when_the_geo_service_is_up(engine: flowforge.Engine, tmp_path: Path) -> None:
    workflow = flowforge.load(EXAMPLES / "etl" / "etl.yaml")
    target = tmp_path / "customers.jsonl"

    result = engine.run(workflow, {"target": str(target), "geo_online": True})

    assert result.status == "completed", result.failure_reason
    assert result.block("enrich_geo").status == "completed"
    assert json.loads(target.read_text().splitlines()[0])["region"] == "emea"


def test_etl_quality_gate_fails_the_run_and_the_handlers_still_run(
    engine: flowforge.Engine, tmp_path: Path
) -> None:
    workflow = flowforge.load(EXAMPLES / "etl" / "etl.yaml")
    target = tmp_path / "customers.jsonl"

    result = engine.run(workflow, {"target": str(target), "max_rejects": 1})

    assert result.status == "failed"
    assert result.failure_reason is not None and "quality_gate" in result.failure_reason
    assert result.block("quality_gate").error == {
        "type": "Failed",
        "message": "2 rows rejected (limit 1)",
    }
    assert statuses(result)["load"] == "skipped"
    assert statuses(result)["alert"] == "completed"
    assert result.block("alert").output == (
        "ETL run failed — quality_gate: Failed: 2 rows rejected (limit 1)"
    )
    assert result.block("report").status == "completed"
    assert result.block("report").output["loaded"] == 0
    assert result.block("report").output["alerted"] is True
    assert not target.exists()


def test_etl_dry_run_skips_the_load(engine: flowforge.Engine, tmp_path: Path) -> None:
    workflow = flowforge.load(EXAMPLES / "etl" / "etl.yaml")
    target = tmp_path / "customers.jsonl"

    result = engine.run(workflow, {"target": str(target), "dry_run": True})

    assert result.status == "completed", result.failure_reason
    assert statuses(result)["load"] == "skipped"
    assert result.outputs is not None and result.outputs["report"]["load_status"] == "skipped"
    assert not target.exists()


# -- timeouts and fail_fast ------------------------------------------------------------------------


def test_timeouts_block_timeout_fails_fast_and_handlers_run(engine: flowforge.Engine) -> None:
    workflow = flowforge.load(EXAMPLES / "timeouts" / "timeouts.yaml")

    result = engine.run(workflow, {})

    assert result.status == "failed"
    pricing = result.block("pricing")
    assert pricing.status == "failed" and pricing.attempts == 2
    assert pricing.error == {
        "type": "Timeout",
        "message": "the attempt exceeded its timeout of 0.5s",
    }
    assert statuses(result) == {
        "lookup": "completed",
        "pricing": "failed",
        "export": "canceled",  # fail_fast canceled the long parallel job
        "quote": "skipped",
        "on_failure": "completed",  # one_failed handler
        "cleanup": "completed",  # all_done cleanup
    }
    assert result.block("on_failure").output == (
        "paged: Timeout: the attempt exceeded its timeout of 0.5s"
    )
    assert result.block("cleanup").output == {
        "released": "customer-lock",
        "quote": "skipped",
        "export": "canceled",
    }
    assert result.finished_at is not None and result.started_at is not None
    assert (result.finished_at - result.started_at).total_seconds() < 5  # export did not run 10s


def test_timeouts_workflow_completes_when_the_services_are_fast(
    engine: flowforge.Engine,
) -> None:
    workflow = flowforge.load(EXAMPLES / "timeouts" / "timeouts.yaml")

    result = engine.run(workflow, {"pricing_hangs_for": 0.05, "export_seconds": 0.2})

    assert result.status == "completed", result.failure_reason
    assert statuses(result)["on_failure"] == "skipped"
    assert result.outputs == {
        "on_failure": None,
        "cleanup": {"released": "customer-lock", "quote": "completed", "export": "completed"},
    }


def test_run_timeout_ends_the_run_timed_out(engine: flowforge.Engine) -> None:
    workflow = flowforge.load(EXAMPLES / "timeouts" / "run_timeout.yaml")

    result = engine.run(workflow, {})

    assert result.status == "timed_out"
    assert result.failure_reason == "the run exceeded its timeout"
    assert statuses(result)["start"] == "completed"
    assert statuses(result)["wait_for_approval"] == "canceled"


# -- script examples -------------------------------------------------------------------------------


def run_script(script: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FLOWFORGE_DATABASE_URL"}
    env["FLOWFORGE_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stored_runs(home: Path) -> list[flowforge.RunResult]:
    with flowforge.Engine(f"sqlite:///{home / 'flowforge.db'}") as engine:
        return engine.list()


@pytest.mark.parametrize("script", SCRIPT_EXAMPLES, ids=lambda p: p.parent.name)
def test_script_example_exits_zero_and_stores_its_run_under_flowforge_home(
    script: Path, tmp_path: Path
) -> None:
    done = run_script(script, tmp_path)

    assert done.returncode == 0, done.stderr
    assert re.search(r"^run run_\w+: completed$", done.stdout, re.MULTILINE)
    assert (tmp_path / "flowforge.db").is_file()


def test_python_api_example_prints_the_total_after_a_retry(tmp_path: Path) -> None:
    done = run_script(EXAMPLES / "python_api" / "totals.py", tmp_path, "5")

    assert done.returncode == 0, done.stderr
    assert "outputs: {'total': 10}" in done.stdout
    assert "numbers: completed after 2 attempt(s)" in done.stdout
    assert "block.retrying" in done.stdout
    runs = stored_runs(tmp_path)
    assert [(r.status, r.outputs) for r in runs] == [("completed", {"total": 10})]


def test_custom_block_example_greets(tmp_path: Path) -> None:
    done = run_script(EXAMPLES / "custom_block" / "greet.py", tmp_path, "Grace")

    assert done.returncode == 0, done.stderr
    assert "outputs: {'greeting': 'Hello, Grace! Hello, Grace!', 'length': 27}" in done.stdout
    assert "type: greet" in done.stdout


# -- the docs only show examples that exist --------------------------------------------------------


def test_every_example_path_named_in_the_docs_exists() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    named = {
        (page.name, match)
        for page in pages
        for match in re.findall(r"(?<![\w/])examples/[\w/.-]+\.(?:yaml|py|csv)", page.read_text())
    }
    assert named, "the docs should point at the examples"
    missing = sorted((page, path) for page, path in named if not (ROOT / path).exists())
    assert missing == []


FROM_EXAMPLE = re.compile(r"<!-- from (examples/\S+) -->\n```\w*\n(.*?)```", re.DOTALL)


def test_code_shown_from_an_example_is_a_verbatim_excerpt_of_it() -> None:
    """Docs mark excerpts with ``<!-- from examples/PATH -->`` on the line before the fence."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    excerpts = [
        (page.name, path, code)
        for page in pages
        for path, code in FROM_EXAMPLE.findall(page.read_text())
    ]
    assert len(excerpts) >= 5
    for page, path, code in excerpts:
        assert code in (ROOT / path).read_text(), f"{page}: excerpt of {path} is out of date"


# -- control_flow/order_pipeline: for_each, switch, loop, workflow, wait_for_signal --------------


def test_order_pipeline_example_uses_every_control_flow_block(engine: flowforge.Engine) -> None:
    engine.apply(flowforge.load(EXAMPLES / "control_flow" / "shipping.yaml"))
    workflow = flowforge.load(EXAMPLES / "control_flow" / "order_pipeline.yaml")

    result = engine.run(workflow, {})

    assert result.status == "completed", result.failure_reason
    # shipping: 5 + 2w for weights 2, 7, 1 -> 9 + 19 + 7
    assert result.outputs == {
        "total": 35,
        "route": "big",
        "approved_by": None,
        "delays": [1, 2, 4, 8],
    }
    assert result.block("price").output[1] == {"size": "heavy", "shipping": {"price": 19}}
    assert result.block("approval").error == {
        "type": "Timeout",
        "message": "no signal 'approved' arrived within 0.5s",
    }
    assert result.block("auto_ok").status == "skipped"
    children = [r for r in engine.list() if r.workflow_id == "shipping-quote"]
    assert len(children) == 3 and {r.status for r in children} == {"completed"}
