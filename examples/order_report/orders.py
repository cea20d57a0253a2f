"""Functions of the order_report example, imported by the workflow as "orders:NAME".

Everything is simulated locally (no network): orders are made up from their ids, and the sleeps
stand in for the latency of real services so that the live progress view has something to show.
"""

from __future__ import annotations

import time
from typing import Any

REGIONS = ("eu", "us", "apac")
LATENCY = {"eu": 0.4, "us": 0.8, "apac": 0.6}


def region_of(order_id: int) -> str:
    return REGIONS[order_id % len(REGIONS)]


def fetch_orders(region: str, order_ids: list[int], ctx: Any) -> list[dict[str, Any]]:
    """Fetch the orders of one region (one regional shop API each, simulated)."""
    time.sleep(LATENCY[region])
    orders = [
        {
            "id": i,
            "region": region,
            "sku": f"SKU-{100 + i % 5}",
            "quantity": 1 + i % 3,
            "amount": round(12.5 * i + 7.25, 2),
        }
        for i in order_ids
        if region_of(i) == region
    ]
    ctx.logger.info("fetched %d order(s) from %s", len(orders), region)
    return orders


def check_inventory(orders: list[dict[str, Any]], ctx: Any) -> dict[str, int]:
    """Look up the stock of every ordered SKU.

    The inventory service is flaky: the first attempt always times out (deterministically, so the
    demo shows a retry every time); the retry policy of the block makes the second one succeed.
    """
    time.sleep(0.3)
    if ctx.attempt == 1:
        raise ConnectionError("inventory service timed out (simulated flaky first attempt)")
    skus = sorted({order["sku"] for order in orders})
    return {sku: 40 + 7 * int(sku[-1]) for sku in skus}


def total(orders: list[dict[str, Any]]) -> float:
    """The sum of the orders' amounts."""
    return round(sum(order["amount"] for order in orders), 2)


def build_report(summary: dict[str, Any], stock: dict[str, int], threshold: float) -> str:
    """A short text report."""
    time.sleep(0.3)
    lines = [f"{summary['count']} order(s), total {summary['total']:.2f}"]
    lines += [f"  {region}: {n} order(s)" for region, n in sorted(summary["by_region"].items())]
    low = [sku for sku, units in stock.items() if units < 50]
    lines.append(f"low stock: {', '.join(low) if low else 'none'}")
    if summary["total"] > threshold:
        lines.append(f"above the threshold of {threshold:g}: notify the sales team")
    return "\n".join(lines)
