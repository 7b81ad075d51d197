"""The inventory tests exercise PostgreSQL, not the Redis adapters (the gate tests cover both):
they run once, on Redis by URL."""

from __future__ import annotations

import pytest


@pytest.fixture
def backend() -> str:
    return "redis"
