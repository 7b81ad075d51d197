"""Suspension reaches the account: the founder suspends an account (every key stops on its next
request, on every instance, and it mints no key), and a suspended key cannot be escaped by
revoking or rotating it away or by minting a new one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.accounts import service as accounts
from app.core.config import Settings
from app.main import create_app
from tests.support.factories import ADMIN, key_headers, make_account
from tests.support.settings import PATIENT_REDIS_TIMEOUT_MS


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A change must be seen on the very next request: a Redis budget a loaded machine does not
    exceed (past it the gate fails open on its cached context)."""
    return settings.model_copy(update={"REDIS_TIMEOUT_MS": PATIENT_REDIS_TIMEOUT_MS})


@pytest.fixture
async def second(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """Another instance on the same Postgres and Redis, with its own warm key cache."""
    other = create_app(app.state.services.settings)
    async with AsyncClient(transport=ASGITransport(other), base_url="http://b") as client:
        yield client
    await other.state.services.close()


async def account_with_two_keys(client: AsyncClient) -> tuple[str, list[str], list[str]]:
    """An account, its two keys and their ids (sign-up key first)."""
    account_id, first = await make_account(client)
    created = (await client.post("/v1/keys", headers=key_headers(first))).json()
    listed = (await client.get("/v1/keys", headers=key_headers(first))).json()["data"]
    return account_id, [first, created["api_key"]], [k["id"] for k in listed]


async def test_suspending_an_account_stops_every_key_on_every_instance(
    client: AsyncClient, second: AsyncClient
) -> None:
    account_id, keys, _ = await account_with_two_keys(client)
    _, bystander = await make_account(client)
    for instance in (client, second):  # both instances hold both keys warm
        for key in keys:
            assert (await instance.get("/v1/products", headers=key_headers(key))).status_code == 200
    response = await client.post(f"/v1/admin/accounts/{account_id}/suspend", headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {"account_id": account_id, "status": "suspended"}
    for instance in (client, second):
        for key in keys:
            data = await instance.get("/v1/products", headers=key_headers(key))
            assert data.status_code == 403 and data.json()["error"] == "key_suspended"
            assert "account is suspended" in data.json()["message"]
            control = await instance.post("/v1/keys", headers=key_headers(key))
            assert control.status_code == 403 and control.json()["error"] == "key_suspended"
            assert "account is suspended" in control.json()["message"]
    assert (await second.get("/v1/products", headers=key_headers(bystander))).status_code == 200
    response = await client.post(f"/v1/admin/accounts/{account_id}/unsuspend", headers=ADMIN)
    assert response.json() == {"account_id": account_id, "status": "active"}
    for instance in (client, second):
        for key in keys:
            assert (await instance.get("/v1/products", headers=key_headers(key))).status_code == 200
    assert (await client.post("/v1/keys", headers=key_headers(keys[0]))).status_code == 201


async def test_account_suspension_is_for_the_founder_and_names_unknown_accounts(
    client: AsyncClient,
) -> None:
    account_id, key = await make_account(client)
    for path in ("suspend", "unsuspend"):
        missing = await client.post(f"/v1/admin/accounts/acct_nope/{path}", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["error"] == "account_not_found"
        own = await client.post(f"/v1/admin/accounts/{account_id}/{path}", headers=key_headers(key))
        assert own.status_code == 403 and own.json()["error"] == "admin_required"
        anonymous = await client.post(f"/v1/admin/accounts/{account_id}/{path}")
        assert anonymous.status_code == 401
    twice = [
        (await client.post(f"/v1/admin/accounts/{account_id}/suspend", headers=ADMIN)).json()
        for _ in range(2)
    ]
    assert twice == [{"account_id": account_id, "status": "suspended"}] * 2


async def test_a_suspended_account_mints_no_key_even_mid_request(
    app: FastAPI, client: AsyncClient
) -> None:
    """The control plane already refuses a suspended account's keys; a request that passed it a
    moment before the suspension committed is refused under the account lock."""
    account_id, key = await make_account(client)
    assert (
        await client.post(f"/v1/admin/accounts/{account_id}/suspend", headers=ADMIN)
    ).status_code == 200
    services = app.state.services
    async with services.db.unit() as session:
        with pytest.raises(accounts.AccountSuspended) as refused:
            await accounts.create_key(session, account_id, name=None)
    assert refused.value.status_code == 403 and refused.value.code == "account_suspended"
    listed = await client.post(f"/v1/admin/accounts/{account_id}/unsuspend", headers=ADMIN)
    assert listed.status_code == 200
    assert len((await client.get("/v1/keys", headers=key_headers(key))).json()["data"]) == 1


async def test_a_suspended_key_cannot_be_escaped(client: AsyncClient) -> None:
    """With one key suspended, the owner's other key can neither mint a new key, nor rotate,
    nor revoke the suspended key away; lifting the suspension lifts all of it."""
    _, (first, other), (first_id, other_id) = await account_with_two_keys(client)
    suspended = await client.post(f"/v1/admin/keys/{other_id}/suspend", headers=ADMIN)
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    mine = key_headers(first)
    attempts = {
        "create": await client.post("/v1/keys", headers=mine),
        "rotate another": await client.post(f"/v1/keys/{first_id}/rotate", headers=mine),
        "revoke suspended": await client.delete(f"/v1/keys/{other_id}", headers=mine),
        "rotate suspended": await client.post(f"/v1/keys/{other_id}/rotate", headers=mine),
    }
    codes = {name: (r.status_code, r.json()["error"]) for name, r in attempts.items()}
    assert codes == {
        "create": (403, "account_has_suspended_key"),
        "rotate another": (403, "account_has_suspended_key"),
        "revoke suspended": (403, "key_suspended"),
        "rotate suspended": (403, "key_suspended"),
    }
    assert attempts["create"].json()["suspended_keys"] == [other_id]
    # the only working key left is the last one: revoking it is refused too
    last = await client.delete(f"/v1/keys/{first_id}", headers=mine)
    assert last.status_code == 409 and last.json()["error"] == "last_key"
    listed = (await client.get("/v1/keys", headers=mine)).json()["data"]
    assert [(k["id"], k["status"]) for k in listed] == [
        (first_id, "active"),
        (other_id, "suspended"),
    ]
    assert (
        await client.post(f"/v1/admin/keys/{other_id}/unsuspend", headers=ADMIN)
    ).status_code == 200
    assert (await client.post("/v1/keys", headers=mine)).status_code == 201
    assert (await client.delete(f"/v1/keys/{other_id}", headers=mine)).status_code == 200
