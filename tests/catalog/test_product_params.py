"""`GET /v1/products/{sku}` reads its parameters itself (app/catalog/router.py): it must document
them and refuse bad ones exactly as FastAPI does from the typed signature it no longer declares."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.catalog.router import PRODUCT_PARAMETERS, SkuParam
from app.core.errors import install_error_handlers
from app.deps import ApiKeyHeader

PATH = "/v1/products/{sku}"
BAD_SKUS = [
    "-starts-with-a-dash",
    ".dot",
    "a" * 65,
    "has space",
    "ümlaut",
    "semi;colon",
    "quote'",
    "%00",
    "a" * 5000,
]


def typed_app() -> FastAPI:
    """What the route was: FastAPI validating `sku: SkuParam, x_api_key: ApiKeyHeader`."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get(PATH)
    async def typed(sku: SkuParam, x_api_key: ApiKeyHeader = None) -> dict[str, Any]:
        return {"sku": sku, "key": x_api_key}

    return app


def test_the_documented_parameters_are_what_fastapi_builds_from_the_typed_signature(
    app: FastAPI,
) -> None:
    built = typed_app().openapi()["paths"][PATH]["get"]["parameters"]
    assert PRODUCT_PARAMETERS == built
    assert app.openapi()["paths"][PATH]["get"]["parameters"] == built


@pytest.mark.parametrize("sku", BAD_SKUS)
async def test_a_bad_sku_is_refused_as_fastapi_refused_it(client: AsyncClient, sku: str) -> None:
    transport = ASGITransport(app=typed_app())
    async with AsyncClient(transport=transport, base_url="http://test") as typed:
        want = await typed.get(f"/v1/products/{sku}", headers={"X-API-Key": "am_live_x"})
    got = await client.get(f"/v1/products/{sku}", headers={"X-API-Key": "am_live_x"})
    assert (got.status_code, got.json()) == (want.status_code, want.json())
    assert got.status_code == 422
    assert got.json()["fields"][0]["field"] == "sku"


async def test_a_valid_sku_passes_validation_to_the_gate(client: AsyncClient) -> None:
    # No key: the gate's 401, not a validation error (the SKU itself is valid).
    response = await client.get("/v1/products/ok-sku.1")
    assert response.status_code == 401
    assert response.json()["error"] == "missing_api_key"
