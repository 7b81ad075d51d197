"""The OpenAPI document and the server agree (what Schemathesis checks from outside, in
scripts/schemathesis.sh): a 405's `Allow` lists every method of the path, every operation that
takes a body documents the statuses the shared machinery answers, a JSON type is never coerced
into another (`true` is not an integer), and the plan editor's schema offers `null` only where the
server takes it."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from app.core.schemas import TEXT_INPUT
from app.inventory.schemas import SyncRequest
from tests.support.factories import ADMIN, key_headers, make_account, make_products, product


@pytest.fixture
def backend() -> str:
    """The document and validation do not depend on the rate limiter's backend."""
    return "redis"


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def _fields(response: Any) -> set[str]:
    return {f["field"] for f in response.json()["fields"]}


# --- 405: Allow lists every method of the path -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/v1/keys", "GET, POST"),
        ("PUT", "/v1/webhooks", "GET, POST"),
        ("PATCH", "/v1/webhooks/wh_123", "GET, DELETE"),
        ("GET", "/v1/admin/plans/pro", "PUT"),
        # a concrete path is its own resource, though `GET /v1/products/{sku}` also matches it
        ("PUT", "/v1/products/bulk", "POST"),
    ],
)
async def test_405_allow_lists_every_method_of_the_path(
    client: AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"] == "method_not_allowed"


async def test_405_allow_matches_the_document_for_every_path(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path, item in spec["paths"].items():
        documented = {method.upper() for method in item}
        unused = next(m for m in ("PATCH", "PUT", "DELETE", "GET") if m not in documented)
        concrete = path.replace("{", "x").replace("}", "")  # any value for each parameter
        response = await client.request(unused, concrete)
        assert response.status_code == 405, (unused, path)
        assert set(response.headers["allow"].split(", ")) == documented, path


# --- every body-taking operation documents 400, 413 and 422 ------------------------------------


async def test_every_operation_with_a_body_documents_400_413_422(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    with_body = [(m, p, op) for m, p, op in _operations(spec) if "requestBody" in op]
    assert {("POST", "/v1/keys"), ("POST", "/v1/signup"), ("POST", "/v1/webhooks")} <= {
        (m, p) for m, p, _ in with_body
    }
    for method, path, operation in with_body:
        missing = {"400", "413", "422"} - set(operation["responses"])
        assert not missing, f"{method} {path} does not document {sorted(missing)}"
        body = operation["responses"]["400"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ErrorBody"}


async def test_every_operation_with_parameters_documents_422(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for method, path, operation in _operations(spec):
        if operation.get("parameters"):
            assert "422" in operation["responses"], f"{method} {path}"


@pytest.mark.parametrize("path", ["/v1/keys", "/v1/signup", "/v1/webhooks"])
async def test_the_documented_400_and_413_are_what_the_server_answers(
    client: AsyncClient, path: str
) -> None:
    _, key = await make_account(client, plan="pro")
    headers = {**key_headers(key), "Content-Type": "application/json"}
    unreadable = await client.post(path, content=b'{"a": "\xff"}', headers=headers)
    assert unreadable.status_code == 400 and unreadable.json()["error"] == "invalid_body"
    oversized = await client.post(path, content=b" " * (65 * 1024), headers=headers)
    assert oversized.status_code == 413 and oversized.json()["error"] == "payload_too_large"
    not_json = await client.post(path, content=b"{", headers=headers)
    assert not_json.status_code == 422 and not_json.json()["error"] == "invalid_json"


# --- JSON types are strict: `true` is not an integer ------------------------------------------


async def test_true_for_a_products_stock_is_a_422(client: AsyncClient) -> None:
    body = {"products": [product("BOOL-1", stock=True)]}
    response = await client.put("/v1/admin/products", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert _fields(response) == {"products.0.stock"}
    assert response.json()["fields"][0]["issue"] == "Input should be a valid integer"
    _, key = await make_account(client)
    stored = await client.get("/v1/products/BOOL-1", headers=key_headers(key))
    assert stored.status_code == 404  # nothing was stored
    for price in ("1999", True, 19.5):
        body = {"products": [product("BOOL-1", price_cents=price)]}
        response = await client.put("/v1/admin/products", json=body, headers=ADMIN)
        assert response.status_code == 422 and _fields(response) == {"products.0.price_cents"}


async def test_true_for_an_inventory_sync_stock_is_a_422(client: AsyncClient) -> None:
    [sku] = await make_products(client, 1)
    for stock in (True, "3"):
        body = {"items": [{"sku": sku, "stock": stock}]}
        response = await client.post("/v1/admin/inventory/sync", json=body, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert _fields(response) == {"items.0.stock"}
    _, key = await make_account(client, plan="pro")
    assert (await client.get(f"/v1/products/{sku}", headers=key_headers(key))).json()["stock"] == 5


async def test_true_for_pagination_limit_is_a_422(client: AsyncClient) -> None:
    _, key = await make_account(client)
    body = {"query": "thing", "pagination": {"limit": True}}
    response = await client.post("/v1/products/search", json=body, headers=key_headers(key))
    assert response.status_code == 422 and _fields(response) == {"pagination.limit"}
    # a number for a boolean is refused the same way
    body = {"facets": 1}
    response = await client.post("/v1/products/search", json=body, headers=key_headers(key))
    assert response.status_code == 422 and _fields(response) == {"facets"}


async def test_a_json_integer_may_be_written_with_a_zero_fraction(client: AsyncClient) -> None:
    """JSON Schema's `integer` includes 7.0; only a fraction makes a number not an integer."""
    [sku] = await make_products(client, 1)
    body = {"items": [{"sku": sku, "stock": 7.0}]}
    response = await client.post("/v1/admin/inventory/sync", json=body, headers=ADMIN)
    assert response.status_code == 200 and response.json()["updated"] == [sku]
    _, key = await make_account(client)
    body = {"pagination": {"limit": 2.0}}
    response = await client.post("/v1/products/search", json=body, headers=key_headers(key))
    assert response.status_code == 200


async def test_query_strings_still_carry_integers_and_booleans(client: AsyncClient) -> None:
    await make_products(client, 3)
    _, key = await make_account(client)
    response = await client.get(
        "/v1/products", params={"limit": "2", "in_stock": "true"}, headers=key_headers(key)
    )
    assert response.status_code == 200 and len(response.json()["data"]) == 2


def test_text_sources_keep_their_conversions() -> None:
    """CSV cells (the catalog importer) spell every number as text."""
    row = {"items": [{"sku": "A-1", "stock": "3"}]}
    assert SyncRequest.model_validate(row, context=TEXT_INPUT).items[0].stock == 3


# --- PUT /v1/admin/plans/{code}: no `null` offered where refused; `{}` names the fields --------


async def test_a_new_plan_without_its_required_fields_is_a_422_naming_them(
    client: AsyncClient,
) -> None:
    response = await client.put("/v1/admin/plans/newplan", json={}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert _fields(response) == {"name", "included_calls", "requests_per_minute"}
    response = await client.put(
        "/v1/admin/plans/newplan", json={"name": "New", "included_calls": 10}, headers=ADMIN
    )
    assert response.status_code == 422 and _fields(response) == {"requests_per_minute"}


async def test_an_existing_plan_takes_an_empty_change(client: AsyncClient) -> None:
    response = await client.put("/v1/admin/plans/pro", json={}, headers=ADMIN)
    assert response.status_code == 200 and response.json()["code"] == "pro"


@pytest.mark.parametrize(
    "field", ["name", "currency", "included_calls", "requests_per_minute", "features", "public"]
)
async def test_null_for_a_plan_field_is_a_422_naming_it(client: AsyncClient, field: str) -> None:
    response = await client.put("/v1/admin/plans/pro", json={field: None}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [{"field": field, "issue": "cannot be null"}]


async def test_the_plan_schema_offers_null_only_for_the_prices(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    properties = spec["components"]["schemas"]["PlanUpdate"]["properties"]
    nullable = {
        name
        for name, schema in properties.items()
        if {"type": "null"} in schema.get("anyOf", []) or schema.get("type") == "null"
    }
    assert nullable == {"monthly_price_cents", "overage_cents_per_1000"}
    assert properties["included_calls"]["minimum"] == 0  # the bounds survived
    assert properties["currency"]["pattern"] == "^[a-z]{3}$"
    # null where the document offers it: the price is removed
    response = await client.put(
        "/v1/admin/plans/pro", json={"overage_cents_per_1000": None}, headers=ADMIN
    )
    assert response.status_code == 200 and response.json()["overage_cents_per_1000"] is None


def test_a_product_name_of_only_whitespace_is_documented_as_refused() -> None:
    """Schemathesis (seed 18124) sent a name of one no-break space: stripped, it is empty and
    refused, so the schema must say a name needs a non-whitespace character."""
    from app.catalog.schemas import ProductIn

    name = ProductIn.model_json_schema()["properties"]["name"]
    assert name.get("pattern") == r"\S"
