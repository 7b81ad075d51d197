"""`Authorization: Bearer <key>` works on REST as on MCP (one helper, `app.deps.presented_key`):
on the data-plane gate and for the control-plane principal, `X-API-Key` first. A malformed
Authorization header is no key (401 `missing_api_key`), never a 500; the cron endpoints keep
their own `Bearer $CRON_SECRET`."""

from __future__ import annotations

from httpx import AsyncClient

from tests.support.factories import make_account, make_products

MALFORMED = ["", " ", "Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc",
             "Bearerabc", "am_live_x"]  # fmt: skip


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_a_bearer_key_is_gated_metered_and_reads_the_principal(client: AsyncClient) -> None:
    (sku,) = await make_products(client, 1)
    _, key = await make_account(client)
    read = await client.get(f"/v1/products/{sku}", headers=bearer(key))
    assert read.status_code == 200, read.text
    assert read.headers["x-quota-remaining"] == "999"  # gated and counted like X-API-Key
    lower = await client.get(f"/v1/products/{sku}", headers={"Authorization": f"bearer  {key}"})
    assert lower.status_code == 200, lower.text  # the scheme is case-insensitive
    usage = await client.get("/v1/usage", headers=bearer(key))
    assert usage.status_code == 200, usage.text
    assert usage.json()["used"] == 2
    account = await client.get("/v1/account", headers=bearer(key))
    assert account.status_code == 200, account.text


async def test_x_api_key_wins_over_a_bearer_key(client: AsyncClient) -> None:
    (sku,) = await make_products(client, 1)
    _, key = await make_account(client)
    _, other = await make_account(client)
    wrong = "am_live_" + "x" * 43
    for path in (f"/v1/products/{sku}", "/v1/usage"):
        both = await client.get(path, headers={"X-API-Key": key, **bearer(wrong)})
        assert both.status_code == 200, (path, both.text)
        refused = await client.get(path, headers={"X-API-Key": wrong, **bearer(key)})
        assert refused.status_code == 401, (path, refused.text)
        assert refused.json()["error"] == "invalid_api_key"
    # the X-API-Key account is the one counted and read
    await client.get(f"/v1/products/{sku}", headers={"X-API-Key": other, **bearer(key)})
    mine = (await client.get("/v1/usage", headers={"X-API-Key": key, **bearer(other)})).json()
    theirs = (await client.get("/v1/usage", headers={"X-API-Key": other, **bearer(key)})).json()
    assert (mine["used"], theirs["used"]) == (1, 1)


async def test_a_malformed_authorization_header_is_no_key(client: AsyncClient) -> None:
    (sku,) = await make_products(client, 1)
    for value in MALFORMED:
        for path in (f"/v1/products/{sku}", "/v1/usage", "/v1/keys"):
            response = await client.get(path, headers={"Authorization": value})
            assert response.status_code == 401, (value, path, response.text)
            assert response.json()["error"] == "missing_api_key", (value, path)


async def test_an_unknown_bearer_key_is_invalid(client: AsyncClient) -> None:
    for path in ("/v1/products", "/v1/usage"):
        response = await client.get(path, headers=bearer("am_live_" + "y" * 43))
        assert response.status_code == 401 and response.json()["error"] == "invalid_api_key"


async def test_cron_keeps_its_own_bearer_secret(client: AsyncClient) -> None:
    _, key = await make_account(client)
    response = await client.get("/v1/internal/cron/rollup-usage", headers=bearer(key))
    assert response.status_code == 401, response.text
