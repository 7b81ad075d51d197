"""The features a plan can include, and the most units one call of each can cost.

A plan whose per-minute limit (or, on a hard-gated plan, monthly quota) is below the cost of a
single call of one of its own features would sell something that can never be used: the founder's
plan edits are checked against `MAX_COST`.
"""

from __future__ import annotations

import math
from typing import Literal

Feature = Literal["catalog.read", "catalog.bulk", "inventory.sync", "webhooks"]

MAX_BULK_SKUS = 100  # SKUs in one `POST /v1/products/bulk`
BULK_SKUS_PER_UNIT = 10  # a bulk lookup costs 1 unit per 10 SKUs, rounded up

MAX_COST: dict[str, int] = {
    "catalog.read": 1,
    "catalog.bulk": math.ceil(MAX_BULK_SKUS / BULK_SKUS_PER_UNIT),
    "inventory.sync": 1,
    "webhooks": 1,
}


def cost_per(units: int, count: int) -> int:
    """1 unit per `units` items, rounded up (at least 1)."""
    return max(1, math.ceil(count / units))
