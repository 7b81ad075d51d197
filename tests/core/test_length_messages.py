"""A length bound names characters for a string and items for a list, however the field's type
stacks its validators (a bound after a validator is checked by pydantic as a generic length, whose
own message says "items" for strings too; app/core/errors.py renders it)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Query
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel, Field, StringConstraints, TypeAdapter, ValidationError

from app.catalog.search.schemas import FilterValue, QueryText
from app.core.errors import install_error_handlers
from app.core.schemas import CleanStr
from tests.support.factories import key_headers, make_account

Bounded = Annotated[CleanStr, StringConstraints(min_length=2, max_length=5)]  # after a validator
Plain = Annotated[str, StringConstraints(max_length=1)]  # on the string itself


class Body(BaseModel):
    text: Bounded | None = None
    one: Plain | None = None
    words: list[Bounded] = Field(default_factory=list, max_length=2)


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/body")
    async def body(payload: Body) -> dict[str, str]:
        return {}

    @app.get("/query")
    async def query(q: Annotated[Bounded | None, Query()] = None) -> dict[str, str]:
        return {}

    return app


async def _issues(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    return {f["field"]: f["issue"] for f in body["fields"]}


async def test_string_bounds_count_characters_and_list_bounds_items() -> None:
    transport = ASGITransport(app=_app())
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        post = await client.post(
            "/body", json={"text": "x" * 300, "one": "ab", "words": ["ok", "ok", "ok"]}
        )
        assert await _issues(post) == {
            "text": "String should have at most 5 characters",
            "one": "String should have at most 1 character",
            "words": "List should have at most 2 items after validation, not 3",
        }
        short = await client.post("/body", json={"text": "x", "words": ["ok", "y" * 9]})
        assert await _issues(short) == {
            "text": "String should have at least 2 characters",
            "words.1": "String should have at most 5 characters",
        }
        got = await client.get("/query", params={"q": "x" * 300})
        assert await _issues(got) == {"q": "String should have at most 5 characters"}
        for issue in [*(await _issues(post)).values(), *(await _issues(short)).values()]:
            assert ("items" in issue) is issue.startswith("List"), issue


async def test_a_300_character_query_names_characters(client: AsyncClient) -> None:
    _, key = await make_account(client, plan="pro")
    long = "q" * 300
    searched = await client.post(
        "/v1/products/search",
        json={"query": long, "filters": {"brands": ["b" * 101], "categories": ["c"] * 21}},
        headers=key_headers(key),
    )
    assert await _issues(searched) == {
        "query": "String should have at most 200 characters",
        "filters.brands.0": "String should have at most 100 characters",
        "filters.categories": "List should have at most 20 items after validation, not 21",
    }
    listed = await client.get("/v1/products", params={"q": long}, headers=key_headers(key))
    assert await _issues(listed) == {"q": "String should have at most 200 characters"}


@pytest.mark.parametrize(("text", "bound"), [(QueryText, 200), (FilterValue, 100)])
def test_search_text_bounds_say_characters_in_pydantic_own_message(text: Any, bound: int) -> None:
    """MCP validates `search_catalog`'s arguments with these types and shows pydantic's message."""
    with pytest.raises(ValidationError) as raised:
        TypeAdapter(text).validate_python("x" * 300)
    assert raised.value.errors()[0]["msg"] == f"String should have at most {bound} characters"
