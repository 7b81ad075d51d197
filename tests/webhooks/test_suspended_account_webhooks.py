"""A suspended account must not keep receiving the catalog feed through its outbound
webhooks ("every key of the account stops": the webhooks feature is data plane)."""

from __future__ import annotations

from httpx import AsyncClient

from app.core.db import Database
from tests.support.factories import ADMIN, make_account
from tests.webhooks.conftest import Receiver, queue, register


async def test_a_suspended_accounts_endpoints_receive_no_events(
    client: AsyncClient, db: Database, receiver: Receiver
) -> None:
    account_id, key = await make_account(client, plan="pro")
    await register(client, key, receiver.url("/a"), ("inventory.updated",))
    assert await queue(db, "inventory.updated", {"sku": "X"}) == 1
    response = await client.post(f"/v1/admin/accounts/{account_id}/suspend", headers=ADMIN)
    assert response.status_code == 200
    # suspended: none of its keys work, yet the inventory feed is still fanned out to it
    assert await queue(db, "inventory.updated", {"sku": "X"}) == 0
