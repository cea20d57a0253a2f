"""Functions of the etl example, imported by the workflow as "etl:NAME".

The source is a CSV file beside this module; the "warehouse" is a JSON-lines file. Nothing
touches the network: the geo enrichment service is simulated and offline unless asked.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def extract(source: str) -> list[dict[str, str]]:
    """Read the customer rows of the CSV file ``source`` (relative to this directory)."""
    with open(HERE / source, newline="") as handle:
        return list(csv.DictReader(handle))


def enrich_geo(rows: list[dict[str, str]], online: bool) -> dict[str, str]:
    """Map country codes to regions through a lookup service (optional step).

    The service is simulated; when it is "offline" the block fails, and the workflow carries on
    without it thanks to ``continue_on_failure``.
    """
    if not online:
        raise ConnectionError("geo lookup service is unreachable (simulated outage)")
    regions = {"FR": "emea", "DE": "emea", "US": "amer", "BR": "amer", "JP": "apac"}
    return {row["country"]: regions.get(row["country"], "unknown") for row in rows}


def clean(rows: list[dict[str, str]], geo: dict[str, str] | None) -> dict[str, Any]:
    """Normalise rows; reject those without a valid e-mail or with a bad amount."""
    accepted, rejected = [], []
    for row in rows:
        email = row["email"].strip().lower()
        try:
            spent = round(float(row["spent"]), 2)
        except ValueError:
            spent = None
        if "@" not in email or spent is None:
            rejected.append(
                {"id": int(row["id"]), "reason": "bad e-mail" if "@" not in email else "bad amount"}
            )
            continue
        record = {
            "id": int(row["id"]),
            "name": row["name"].strip().title(),
            "email": email,
            "country": row["country"],
            "spent": spent,
        }
        if geo is not None:
            record["region"] = geo.get(row["country"], "unknown")
        accepted.append(record)
    return {"rows": accepted, "rejected": rejected}


def load(rows: list[dict[str, Any]], target: str, run_id: str) -> dict[str, Any]:
    """Write the rows to the JSON-lines file ``target``, replacing the previous load.

    Writing to a temporary file then renaming makes the step idempotent: if the process dies
    and the block runs again, the target ends up the same.
    """
    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".{run_id}.tmp")
    with open(tmp, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    tmp.replace(path)
    return {"target": str(path), "rows": len(rows)}


def alert(failures: dict[str, Any]) -> str:
    """Tell someone (here: return the message that would be sent to the on-call channel)."""
    failed = {block: error for block, error in failures.items() if error}
    details = "; ".join(
        f"{block}: {error['type']}: {error['message']}" for block, error in failed.items()
    )
    return f"ETL run failed — {details}"
