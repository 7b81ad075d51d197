"""Fixtures of the catalog tests: `backends`, the judged search suites' two loaded apps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.catalog.search_backends import Backend, running_backends
from tests.conftest import PG_DATABASE


@pytest.fixture(scope="module")
async def backends(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Backend]]:
    """PostgreSQL and SQLite apps with the sample catalog, loaded once per test module.

    The PostgreSQL database is named after the module (`test_search_agents` →
    `<TEST_PG_DATABASE>_search_agents`), so two suites never share or drop each other's."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    async with running_backends(
        f"{PG_DATABASE}_{module}", tmp_path_factory.mktemp(module)
    ) as started:
        yield started
