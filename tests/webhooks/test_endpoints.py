"""The webhook endpoints: plan gate, registration (SSRF guard, cap, secret once), reads, delete."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from app.core.config import Settings
from app.webhooks.service import MAX_ENDPOINTS_PER_ACCOUNT
from tests.support.factories import key_headers, make_account
from tests.webhooks.conftest import Receiver, StubDNS, register


async def test_free_accounts_get_feature_not_in_plan_with_the_upgrade_link(
    client: AsyncClient,
) -> None:
    _, key = await make_account(client)
    body = {"url": "https://hooks.example.com/x", "event_types": ["inventory.updated"]}
    for response in (
        await client.post("/v1/webhooks", json=body, headers=key_headers(key)),
        await client.get("/v1/webhooks", headers=key_headers(key)),
    ):
        assert response.status_code == 403
        assert response.json()["error"] == "feature_not_in_plan"
        assert response.json()["upgrade_url"].startswith("https://api.agentmall.test/")


async def test_the_secret_is_shown_once_and_never_again(client: AsyncClient) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(
        client, key, "https://hooks.example.com/x", ("inventory.updated", "usage.threshold")
    )
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["event_types"] == ["inventory.updated", "usage.threshold"]
    assert created["enabled"] is True and created["disabled_reason"] is None

    listed = await client.get("/v1/webhooks", headers=key_headers(key))
    one = await client.get(f"/v1/webhooks/{created['id']}", headers=key_headers(key))
    assert listed.status_code == 200 and one.status_code == 200
    assert [w["id"] for w in listed.json()["data"]] == [created["id"]]
    assert created["secret"] not in listed.text and created["secret"] not in one.text
    assert "secret" not in one.json()


async def test_another_accounts_endpoint_is_not_found(client: AsyncClient) -> None:
    _, owner = await make_account(client, plan="pro")
    _, other = await make_account(client, plan="pro")
    created = await register(client, owner, "https://hooks.example.com/x")
    for method, path in [
        ("GET", f"/v1/webhooks/{created['id']}"),
        ("DELETE", f"/v1/webhooks/{created['id']}"),
        ("GET", f"/v1/webhooks/{created['id']}/attempts"),
        ("POST", f"/v1/webhooks/{created['id']}/test"),
    ]:
        response = await client.request(method, path, headers=key_headers(other))
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "webhook_not_found"
    assert (await client.get("/v1/webhooks", headers=key_headers(other))).json()["data"] == []


async def test_delete_removes_the_endpoint(client: AsyncClient) -> None:
    _, key = await make_account(client, plan="pro")
    created = await register(client, key, "https://hooks.example.com/x")
    response = await client.delete(f"/v1/webhooks/{created['id']}", headers=key_headers(key))
    assert response.status_code == 204
    gone = await client.get(f"/v1/webhooks/{created['id']}", headers=key_headers(key))
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "loopback_address"),
        ("https://127.8.9.10/hook", "loopback_address"),
        ("https://10.0.0.1/hook", "private_address"),
        ("https://172.16.0.1/hook", "private_address"),
        ("https://192.168.1.1/hook", "private_address"),
        ("https://169.254.169.254/latest/meta-data", "metadata_address"),
        ("https://169.254.1.1/hook", "link_local_address"),
        ("https://100.64.0.1/hook", "non_public_address"),
        ("https://0.0.0.0/hook", "unspecified_address"),
        ("https://224.0.0.1/hook", "multicast_address"),
        ("https://240.0.0.1/hook", "reserved_address"),
        ("https://[::1]/hook", "loopback_address"),
        ("https://[::]/hook", "unspecified_address"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback_address"),
        ("https://[::ffff:169.254.169.254]/hook", "metadata_address"),
        ("https://[64:ff9b::a00:1]/hook", "private_address"),
        ("https://[2002:c0a8:101::1]/hook", "private_address"),
        ("https://[fc00::1]/hook", "private_address"),
        ("https://[fd00:ec2::254]/hook", "metadata_address"),
        ("https://[fe80::1]/hook", "link_local_address"),
        ("https://[ff02::1]/hook", "multicast_address"),
        ("https://localhost/hook", "loopback_address"),
        ("https://api.localhost/hook", "loopback_address"),
        ("https://internal.example.com/hook", "private_address"),
        ("https://mixed.example.com/hook", "loopback_address"),
        ("https://nowhere.example.com/hook", "unresolvable_host"),
        ("http://hooks.example.com/hook", "not_https"),
        ("ftp://hooks.example.com/hook", "not_https"),
        ("https://user:pw@hooks.example.com/hook", "credentials_in_url"),
        ("not a url", "not_https"),
    ],
)
async def test_unsafe_urls_are_refused_at_registration(
    client: AsyncClient, dns: StubDNS, url: str, reason: str
) -> None:
    dns.answers["internal.example.com"] = ["10.1.2.3"]
    dns.answers["mixed.example.com"] = ["93.184.215.14", "::1"]  # one bad answer spoils it
    _, key = await make_account(client, plan="pro")
    body = {"url": url, "event_types": ["inventory.updated"]}
    response = await client.post("/v1/webhooks", json=body, headers=key_headers(key))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "unsafe_webhook_url"
    assert response.json()["reason"] == reason
    assert response.json()["fields"][0]["field"] == "url"
    assert response.json()["message"]


async def test_plain_http_only_to_the_allowed_test_host(
    client: AsyncClient, receiver: Receiver
) -> None:
    _, key = await make_account(client, plan="pro")
    assert (await register(client, key, receiver.url()))["url"] == receiver.url()
    other_port = receiver.port + 1 if receiver.port < 65535 else receiver.port - 1
    for url in (f"http://127.0.0.1:{other_port}/hook", f"https://127.0.0.1:{other_port}/hook"):
        body = {"url": url, "event_types": ["inventory.updated"]}
        response = await client.post("/v1/webhooks", json=body, headers=key_headers(key))
        assert response.status_code == 422, url


@pytest.mark.parametrize(
    "event_types", [[], ["inventory.deleted"], ["inventory.updated", "nope"], "inventory.updated"]
)
async def test_event_types_must_be_known_and_not_empty(
    client: AsyncClient, event_types: object
) -> None:
    _, key = await make_account(client, plan="pro")
    body = {"url": "https://hooks.example.com/x", "event_types": event_types}
    response = await client.post("/v1/webhooks", json=body, headers=key_headers(key))
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert any(f["field"].startswith("event_types") for f in response.json()["fields"])


async def test_an_account_has_at_most_n_endpoints(client: AsyncClient) -> None:
    _, key = await make_account(client, plan="pro")
    for i in range(MAX_ENDPOINTS_PER_ACCOUNT):
        await register(client, key, f"https://hooks.example.com/{i}")
    body = {"url": "https://hooks.example.com/more", "event_types": ["product.updated"]}
    response = await client.post("/v1/webhooks", json=body, headers=key_headers(key))
    assert response.status_code == 409
    assert response.json()["error"] == "webhook_limit_reached"
    assert response.json()["limit"] == MAX_ENDPOINTS_PER_ACCOUNT
    listed = await client.get("/v1/webhooks", headers=key_headers(key))
    assert len(listed.json()["data"]) == MAX_ENDPOINTS_PER_ACCOUNT


async def test_the_test_endpoint_delivers_a_signed_event_at_once(
    client: AsyncClient, receiver: Receiver
) -> None:
    from standardwebhooks import Webhook

    _, key = await make_account(client, plan="pro")
    created = await register(client, key, receiver.url("/test-me"))
    response = await client.post(f"/v1/webhooks/{created['id']}/test", headers=key_headers(key))
    assert response.status_code == 202, response.text
    assert response.json()["queued"] is True  # attempted right after the answer
    history = await client.get(f"/v1/webhooks/{created['id']}/attempts", headers=key_headers(key))
    assert [(a["status_code"], a["attempt"]) for a in history.json()["data"]] == [(200, 1)]
    [request] = receiver.requests
    assert request.path == "/test-me"
    event = Webhook(created["secret"]).verify(request.body, request.headers)
    assert event["type"] == "webhook.test" and event["data"]["endpoint_id"] == created["id"]

    receiver.statuses = [503]
    failed = await client.post(f"/v1/webhooks/{created['id']}/test", headers=key_headers(key))
    assert failed.status_code == 202
    history = await client.get(f"/v1/webhooks/{created['id']}/attempts", headers=key_headers(key))
    assert [a["status_code"] for a in history.json()["data"]] == [503, 200]
    assert history.json()["data"][0]["error"] == "HTTP 503"


async def test_concurrent_tests_never_exhaust_the_connection_permits(
    settings: Settings, clean_database: None, dns: StubDNS, receiver: Receiver
) -> None:
    """Review finding: the test route used to hold its request's permit while waiting for a
    second one, so DB_MAX_CONNECTIONS concurrent calls hung the instance."""
    import asyncio

    from httpx import ASGITransport

    from app.main import create_app
    from app.webhooks.router import get_resolver

    app = create_app(settings.model_copy(update={"DB_MAX_CONNECTIONS": 2}))
    app.dependency_overrides[get_resolver] = lambda: dns
    async with AsyncClient(transport=ASGITransport(app), base_url="http://cap") as capped:
        _, key = await make_account(capped, plan="pro")
        created = await register(capped, key, receiver.url())
        path = f"/v1/webhooks/{created['id']}/test"
        responses = await asyncio.wait_for(
            asyncio.gather(*(capped.post(path, headers=key_headers(key)) for _ in range(6))), 20
        )
    await app.state.services.close()
    assert {r.status_code for r in responses} == {202}
    assert len(receiver.requests) == 6


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://hooks.example.com/in\x01", "invalid_url"),
        ("https://hooks.example.com/in put", "invalid_url"),
        ("https://hooks.example.com:0/in", "invalid_url"),
    ],
)
async def test_urls_httpx_could_not_send_are_refused_at_registration(
    client: AsyncClient, dns: StubDNS, url: str, reason: str
) -> None:
    """Review finding: such URLs used to register, then fail forever without an attempt row."""
    _, key = await make_account(client, plan="pro")
    body = {"url": url, "event_types": ["inventory.updated"]}
    response = await client.post("/v1/webhooks", json=body, headers=key_headers(key))
    assert response.status_code == 422, response.text
    assert response.json()["reason"] == reason


async def test_an_international_host_is_registered_in_its_ascii_form(
    client: AsyncClient, dns: StubDNS
) -> None:
    dns.answers["xn--bcher-kva.example"] = ["93.184.216.34"]
    _, key = await make_account(client, plan="pro")
    body = {"url": "https://bücher.example/in", "event_types": ["inventory.updated"]}
    response = await client.post("/v1/webhooks", json=body, headers=key_headers(key))
    assert response.status_code == 201, response.text


async def test_refusals_never_reveal_what_a_name_resolves_to_internally(
    client: AsyncClient, dns: StubDNS
) -> None:
    """Review finding: the 422 named the private address, mapping our internal DNS for anyone."""
    dns.answers["db.internal.example"] = ["10.0.3.4"]
    _, key = await make_account(client, plan="pro")
    body = {"url": "https://db.internal.example/x", "event_types": ["inventory.updated"]}
    response = await client.post("/v1/webhooks", json=body, headers=key_headers(key))
    assert response.status_code == 422 and response.json()["reason"] == "private_address"
    assert "10.0.3.4" not in response.text
