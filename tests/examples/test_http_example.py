"""examples/http: the tour workflow against the example's orders API (a real process on
127.0.0.1), through the engine and through ``flowforge run``, and refused by a worker's
policy; docs/blocks/http.md shows verbatim excerpts of it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from example_kit import assert_page_shows_the_example, example_server, flowforge_run

import flowforge

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "http" / "http_tour.yaml"
SERVER = ROOT / "examples" / "http" / "api_server.py"
PAGE = ROOT / "docs" / "blocks" / "http.md"
OUTPUTS = {
    "open_orders": 1,
    "new_order": 4,
    "widgets": 12,
    "shipped": [2],
    "rating": "5",
    "found": False,
}


@pytest.fixture
def base_url() -> Iterator[str]:
    with example_server(SERVER) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_policy_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWFORGE_ALLOW_PRIVATE_NETWORKS", "FLOWFORGE_ALLOWED_NETWORKS"):
        monkeypatch.delenv(name, raising=False)


def test_the_tour_runs_every_field_against_the_local_api(base_url: str, tmp_path: Path) -> None:
    with flowforge.Engine(f"sqlite:///{tmp_path}/x.db") as engine:
        started = time.monotonic()
        result = engine.run(flowforge.load(EXAMPLE), {"base_url": base_url})
        elapsed = time.monotonic() - started
        logs = [line.message for line in engine.logs(result.run_id, "legacy_orders")]

    assert result.status == "completed", [b.error for b in result.blocks]
    assert result.outputs == OUTPUTS
    created = result.block("create_order").output
    assert created["status_code"] == 201
    assert created["body"]["idempotency_key"] == f"{result.run_id}:create_order"
    assert created["body"]["total"] == 42.5
    assert result.block("inventory").attempts == 2  # 503, then Retry-After: 1
    assert elapsed >= 0.9
    assert result.block("lookup").output["body"] == {"error": "no order 999"}
    assert any("/v1/orders -> 301" in line for line in logs), logs
    assert any("/orders -> 200" in line for line in logs), logs


def test_the_tour_with_flowforge_run(base_url: str, tmp_path: Path) -> None:
    done = flowforge_run(EXAMPLE, tmp_path, "-p", f"base_url={base_url}")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == OUTPUTS


def test_a_server_policy_refuses_the_local_api(base_url: str, tmp_path: Path) -> None:
    policy = flowforge.BlockPolicy.for_server({})
    with flowforge.Engine(f"sqlite:///{tmp_path}/x.db", policy=policy) as engine:
        result = engine.run(flowforge.load(EXAMPLE), {"base_url": base_url})

    assert result.status == "failed"
    error = result.block("open_orders").error
    assert error is not None and error["type"] == "ForbiddenAddress"
    assert "127.0.0.1" in error["message"]


def test_the_page_shows_verbatim_excerpts_of_the_example() -> None:
    assert_page_shows_the_example(PAGE, 3)
