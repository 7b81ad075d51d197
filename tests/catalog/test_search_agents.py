"""Judged agent-style queries (issue 18) on `POST /v1/products/search`, on both backends.

The cases, their graders and their checks live in `tests/catalog/agent_cases.py` ("gaming laptop
under $1500", "cheap wireless earbuds", "women's running shoes size 8", questions, queries nothing
matches in full). They run through the HTTP API exactly like the issue 8 suite
(`test_search_relevance.py`, same `backends` fixture and machinery, its own PostgreSQL database
`<TEST_PG_DATABASE>_search_agents` and SQLite file), and this module asserts:

- every hard check of every case, per backend: prices read from words never violated (over all
  pages), sizes and capacities first, the `interpreted` block and each relaxed result's
  `matched_words`;
- the mean nDCG@10 over the cases is at least 0.9 on each backend (the per-case report prints with
  `pytest -s`);
- PostgreSQL and SQLite return the same top 5, with the same scores, for every case.
"""

from __future__ import annotations

import pytest

from tests.catalog.agent_cases import AGENT_CASES
from tests.catalog.relevance_cases import MEAN_NDCG_FLOOR, NDCG_DEPTH, Case
from tests.catalog.search_backends import BACKENDS, Backend, describe, ndcg_report

IDS = [c.id for c in AGENT_CASES]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", AGENT_CASES, ids=IDS)
async def test_case_hard_checks(backends: dict[str, Backend], backend: str, case: Case) -> None:
    outcome = await backends[backend].outcome(case)
    assert not outcome.errors, (
        f"{backend} {case.id} query={case.query!r} filters={case.filters}: "
        + "; ".join(outcome.errors)
        + f"\n    interpreted: {outcome.interpreted}"
        + f"\n    top 5 [grade]:\n{describe(outcome)}"
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_mean_ndcg_at_10(backends: dict[str, Backend], backend: str) -> None:
    outcomes = [await backends[backend].outcome(case) for case in AGENT_CASES]
    mean, report = ndcg_report(backend, outcomes)
    print(report)
    assert mean >= MEAN_NDCG_FLOOR, f"{backend}: mean nDCG@{NDCG_DEPTH} {mean:.3f}"


@pytest.mark.parametrize("case", AGENT_CASES, ids=IDS)
async def test_top5_agree(backends: dict[str, Backend], case: Case) -> None:
    """The same top 5, in the same order and with the same scores, on both backends."""
    pg = await backends["postgresql"].outcome(case)
    lite = await backends["sqlite"].outcome(case)
    message = (
        f"{case.id} q={case.query!r}: top 5 differ\n"
        f"    postgresql:\n{describe(pg, 6)}\n    sqlite:\n{describe(lite, 6)}"
    )
    top = [(p["sku"], p["score"]) for p in pg.page[:5]]
    assert top == [(p["sku"], p["score"]) for p in lite.page[:5]], message
