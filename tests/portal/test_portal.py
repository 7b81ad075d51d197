"""The developer portal over HTTP (real PostgreSQL and Redis): sign-in by email link, sessions,
CSRF, and every page's actions with the API's own rules (the browser suite: tests/portal/browser).
"""

from __future__ import annotations

import re

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from app.webhooks.router import get_resolver
from tests.conftest import database_url
from tests.portal.support import (
    browser,
    csrf_of,
    email,
    logged_link,
    new_key,
    request_link,
    sign_in,
    sql,
    submit,
)
from tests.support.factories import key_headers, make_account, set_account_plan


async def test_the_landing_page_shows_the_plans_from_the_plans_table(
    app: FastAPI, client: AsyncClient
) -> None:
    await client.put(
        "/v1/admin/plans/pro",
        json={"included_calls": 123_456},
        headers={"X-API-Key": app.state.services.settings.ADMIN_API_KEY.get_secret_value()},
    )
    async with browser(app) as b:
        page = await b.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="plans"' in page.text and "123,456" in page.text  # never hard-coded
    assert 'id="signin"' in page.text and 'name="csrf"' in page.text


async def test_first_sign_in_creates_the_free_account_and_shows_its_key_once(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    address = email()
    async with browser(app) as b:
        answer = await sign_in(b, caplog, address)
        assert answer.status_code == 200
        key = new_key(answer.text)
        assert key and key.startswith("am_live_")
        assert (await client.get("/v1/account", headers=key_headers(key))).json()[
            "email"
        ] == address
        dashboard = await b.get("/portal")
        assert dashboard.status_code == 200 and key not in dashboard.text  # shown once
        assert 'id="plan"' in dashboard.text and "Free" in dashboard.text
    # the key is in no log line, no cookie and no URL
    assert all(key not in r.getMessage() for r in caplog.records)


async def test_an_account_made_by_the_api_signs_in_with_its_email(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    address = email()
    made = await client.post("/v1/signup", json={"email": address})
    assert made.status_code == 201
    async with browser(app) as b:
        answer = await sign_in(b, caplog, address.upper())  # one spelling per mailbox
        assert answer.status_code == 303 and answer.headers["location"] == "/portal"
        assert new_key(answer.text) is None
        keys = await b.get("/portal/keys")
        assert made.json()["api_key"][:12] in keys.text


async def test_session_cookie_flags_and_page_headers(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        landing = await b.get("/")
        pre = landing.headers["set-cookie"].lower()
        assert pre.startswith("__host-am_pre=") and "httponly" in pre and "samesite=lax" in pre
        answer = await sign_in(b, caplog, email())
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("__Host-am_session")
        )
        flags = cookie.lower()
        assert "httponly" in flags and "samesite=lax" in flags and "secure" in flags
        assert "am_live_" not in cookie
        page = await b.get("/portal")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


async def test_a_link_works_once(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    async with browser(app) as b:
        token = await request_link(b, caplog, email())
        first = await submit(b, f"/portal/auth/{token}", f"/portal/auth/{token}")
        assert first.status_code == 200
        again = await b.get(f"/portal/auth/{token}")
        assert again.status_code == 400 and "invalid_sign_in_link" in again.text
        token_now = csrf_of((await b.get("/portal")).text)
        reposted = await b.post(f"/portal/auth/{token}", data={"csrf": token_now})
        assert reposted.status_code == 400 and "already used" in reposted.text


async def test_an_expired_link_is_refused(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    async with browser(app) as b:
        token = await request_link(b, caplog, email())
        await sql("UPDATE portal_login_links SET expires_at = now() - interval '1 second'")
        page = await b.get(f"/portal/auth/{token}")
        assert page.status_code == 400 and "invalid_sign_in_link" in page.text


async def test_only_a_hash_of_links_and_sessions_is_stored(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        token = await request_link(b, caplog, email())
        await submit(b, f"/portal/auth/{token}", f"/portal/auth/{token}")
        session_id = b.cookies["__Host-am_session"]
    conn = await asyncpg.connect(database_url())
    try:
        links = [r[0] for r in await conn.fetch("SELECT token_hash FROM portal_login_links")]
        sessions = [r[0] for r in await conn.fetch("SELECT id_hash FROM portal_sessions")]
    finally:
        await conn.close()
    assert token not in links and session_id not in sessions
    assert all(len(h) == 64 for h in links + sessions)


async def test_csrf_is_refused(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    async with browser(app) as b, browser(app) as other:
        await sign_in(b, caplog, email())
        await sign_in(other, caplog, email())
        keys = await b.get("/portal/keys")
        assert len(re.findall(r'<tr data-key-id="', keys.text)) == 1
        missing = await b.post("/portal/keys", data={"name": "x"})
        wrong = await b.post("/portal/keys", data={"csrf": "0" * 64, "name": "x"})
        # a token from another browser's page is not this browser's token
        foreign = csrf_of((await other.get("/portal/keys")).text)
        stolen = await b.post("/portal/keys", data={"csrf": foreign, "name": "x"})
        assert [r.status_code for r in (missing, wrong, stolen)] == [403, 403, 403]
        assert "csrf_refused" in wrong.text
        keys = await b.get("/portal/keys")
        assert len(re.findall(r'<tr data-key-id="', keys.text)) == 1  # nothing was created
        json_body = await b.post("/portal/keys", json={"csrf": csrf_of(keys.text)})
        assert json_body.status_code == 400  # forms only


async def test_an_expired_session_is_refused(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        await sign_in(b, caplog, email())
        assert (await b.get("/portal")).status_code == 200
        await sql("UPDATE portal_sessions SET expires_at = now() - interval '1 second'")
        page = await b.get("/portal")
        assert page.status_code == 401 and 'id="signin"' in page.text
        assert "session has ended" in page.text


async def test_no_cookie_or_a_made_up_one_gets_the_sign_in_page(app: FastAPI) -> None:
    async with browser(app) as b:
        for cookie in (None, "x" * 43, "not a token!", "a" * 500):
            if cookie:
                b.cookies.set("__Host-am_session", cookie, domain="api.agentmall.test")
            page = await b.get("/portal/keys")
            assert page.status_code == 401 and 'id="signin"' in page.text


async def test_the_session_id_changes_at_sign_in(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    address = email()
    async with browser(app) as b:
        await sign_in(b, caplog, address)
        first = b.cookies["__Host-am_session"]
        await sign_in(b, caplog, address)
        second = b.cookies["__Host-am_session"]
        assert first != second
    async with browser(app) as stale:
        stale.cookies.set("__Host-am_session", first, domain="api.agentmall.test")
        assert (await stale.get("/portal")).status_code == 401  # the old session ended


async def test_sign_out_and_sign_out_everywhere(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    address = email()
    async with browser(app) as one, browser(app) as two, browser(app) as three:
        for b in (one, two, three):
            await sign_in(b, caplog, address)
        out = await submit(one, "/portal", "/portal/logout")
        assert out.status_code == 303 and out.headers["location"] == "/"
        assert (await one.get("/portal")).status_code == 401
        assert (await two.get("/portal")).status_code == 200
        everywhere = await submit(two, "/portal", "/portal/logout-all")
        assert everywhere.status_code == 303
        assert (await two.get("/portal")).status_code == 401
        assert (await three.get("/portal")).status_code == 401


async def test_another_accounts_session_cannot_touch_this_accounts_keys(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    _, victim_key = await make_account(client)
    created = await client.post("/v1/keys", headers=key_headers(victim_key))
    victim_key_id = created.json()["id"]
    async with browser(app) as attacker:
        await sign_in(attacker, caplog, email())
        for action in ("revoke", "rotate"):
            answer = await submit(
                attacker, "/portal/keys", f"/portal/keys/{victim_key_id}/{action}"
            )
            assert answer.status_code == 404 and "key_not_found" in answer.text
    listed = await client.get("/v1/keys", headers=key_headers(victim_key))
    assert [k["id"] for k in listed.json()["data"]].count(victim_key_id) == 1
    second = created.json()["api_key"]
    assert (await client.get("/v1/account", headers=key_headers(second))).status_code == 200


async def test_keys_create_rotate_with_grace_and_revoke(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        first = new_key((await sign_in(b, caplog, email())).text)
        assert first
        made = await submit(b, "/portal/keys", "/portal/keys", name="agent two")
        second = new_key(made.text)
        assert made.status_code == 200 and second and "agent two" in made.text
        second_id = re.findall(r'<tr data-key-id="([^"]+)"', made.text)
        keys_page = await b.get("/portal/keys")
        assert second not in keys_page.text  # shown once
        key_id = next(
            k["id"]
            for k in (await client.get("/v1/keys", headers=key_headers(second))).json()["data"]
            if second.startswith(k["prefix"])
        )
        rotated = await submit(
            b, "/portal/keys", f"/portal/keys/{key_id}/rotate", grace_seconds="3600"
        )
        third = new_key(rotated.text)
        assert rotated.status_code == 200 and third and 'id="rotated"' in rotated.text
        # the old key works until its grace ends, the new one at once
        for key in (second, third):
            assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
        revoked = await submit(b, "/portal/keys", f"/portal/keys/{key_id}/revoke")
        assert revoked.status_code == 303 and revoked.headers["location"] == "/portal/keys"
        assert (await client.get("/v1/products", headers=key_headers(second))).status_code == 401
        assert len(second_id) == 2


async def test_the_last_key_cannot_be_revoked(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email())).text)
        assert key
        page = await b.get("/portal/keys")
        (key_id,) = re.findall(r'<tr data-key-id="([^"]+)"', page.text)
        answer = await submit(b, "/portal/keys", f"/portal/keys/{key_id}/revoke")
        assert answer.status_code == 409 and 'role="alert"' in answer.text
        assert 'id="keys"' in answer.text  # the keys page, with the reason
    assert (await client.get("/v1/account", headers=key_headers(key))).status_code == 200


async def test_the_dashboard_shows_usage_current_to_the_gate(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email())).text)
        assert key
        for _ in range(3):
            assert (await client.get("/v1/products", headers=key_headers(key))).status_code == 200
        page = (await b.get("/portal")).text  # no roll-up ran: live counters
    assert re.search(r'id="quota-bar"[^>]*aria-valuenow="3"', page)
    counts = [int(c) for c in re.findall(r'data-count="(\d+)"', page)]
    assert sum(counts) == 3 and max(counts) == 3
    assert "<code>products.list</code></td><td>3</td>" in page


async def test_keys_page_shows_when_a_key_was_last_used(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email())).text)
        assert key
        assert ">never<" in (await b.get("/portal/keys")).text
        await client.get("/v1/products", headers=key_headers(key))
        page = (await b.get("/portal/keys")).text
    assert ">never<" not in page and " UTC" in page


async def test_webhooks_need_a_paid_plan(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        await sign_in(b, caplog, email())
        page = await b.get("/portal/webhooks")
        assert page.status_code == 200 and 'id="webhooks-upgrade"' in page.text
        refused = await b.post(
            "/portal/webhooks",
            data={"csrf": csrf_of(page.text), "url": "https://example.com/h"},
        )
        assert refused.status_code == 403 and "feature_not_in_plan" in refused.text


async def test_webhooks_on_pro_add_show_the_secret_once_list_and_delete(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def public_dns(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    app.dependency_overrides[get_resolver] = lambda: public_dns
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email())).text)
        assert key
        account_id = (await client.get("/v1/account", headers=key_headers(key))).json()["id"]
        await set_account_plan(client, account_id, "pro")
        page = await b.get("/portal/webhooks")
        token = csrf_of(page.text)
        form = {"csrf": token, "url": "https://hooks.example.com/in"}
        no_events = await b.post("/portal/webhooks", data=form)
        plain_http = await b.post(
            "/portal/webhooks",
            data={**form, "url": "http://hooks.example.com/in", "event_types": "usage.threshold"},
        )
        unknown = await b.post("/portal/webhooks", data={**form, "event_types": "nope"})
        assert [r.status_code for r in (no_events, unknown)] == [422, 422]
        assert 400 <= plain_http.status_code < 500
        added = await b.post(
            "/portal/webhooks",
            content=f"csrf={token}&url=https%3A%2F%2Fhooks.example.com%2Fin"
            "&event_types=usage.threshold&event_types=inventory.updated",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert added.status_code == 200
        secret = re.search(r'<code id="new-secret">([^<]+)</code>', added.text)
        assert secret and secret.group(1).startswith("whsec_")
        listed = await b.get("/portal/webhooks")
        assert secret.group(1) not in listed.text
        assert "usage.threshold, inventory.updated" in listed.text
        (endpoint_id,) = re.findall(r'data-webhook-id="([^"]+)"', listed.text)
        gone = await submit(b, "/portal/webhooks", f"/portal/webhooks/{endpoint_id}/delete")
        assert gone.status_code == 303
        assert 'data-webhook-id="' not in (await b.get("/portal/webhooks")).text


async def test_sign_in_links_are_limited_per_email(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    address = email()
    statuses = []
    for _ in range(6):  # SIGN_IN_LINKS_PER_EMAIL_PER_HOUR = 5, from six addresses
        async with browser(app) as b:
            answer = await submit(b, "/portal/login", "/portal/login", email=address)
            statuses.append(answer.status_code)
    assert statuses == [200] * 5 + [429]
    assert len([r for r in caplog.records if address in r.getMessage()]) == 5


async def test_sign_in_links_are_limited_per_address(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    statuses = []
    async with browser(app, ip="100.64.9.9") as b:
        for _ in range(21):  # SIGN_IN_LINKS_PER_IP_PER_HOUR = 20
            statuses.append(
                (await submit(b, "/portal/login", "/portal/login", email=email())).status_code
            )
    assert statuses == [200] * 20 + [429]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"email": ""}, 422, "invalid_email"),
        ({"email": "not-an-email"}, 422, "invalid_email"),
        ({"email": "a" * 250 + "@example.com"}, 422, "invalid_email"),
        ({}, 422, "invalid_email"),
    ],
)
async def test_bad_sign_in_forms_get_a_clear_4xx(
    app: FastAPI, fields: dict[str, str], status: int, code: str
) -> None:
    async with browser(app) as b:
        answer = await submit(b, "/portal/login", "/portal/login", **fields)
    assert answer.status_code == status and code in answer.text
    assert answer.headers["content-type"].startswith("text/html")


async def test_bad_paths_and_bodies_are_pages_not_500s(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        assert (await b.get("/portal/auth/" + "a" * 300)).status_code == 422
        assert (await b.get("/portal/auth/bad token")).status_code == 400
        assert (await b.get("/portal/nope")).status_code == 404
        assert (await b.get("/portal/static/../router.py")).status_code == 404
        assert (await b.get("/portal/static/app.py")).status_code == 404
        css = await b.get("/portal/static/portal.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        await sign_in(b, caplog, email())
        page = await b.get("/portal/keys")
        token = csrf_of(page.text)
        bad_grace = await b.post(
            "/portal/keys/key_x/rotate", data={"csrf": token, "grace_seconds": "-1"}
        )
        assert bad_grace.status_code == 400
        huge = await b.post("/portal/keys", data={"csrf": token, "name": "n" * 101})
        assert huge.status_code == 400
        many = await b.post(
            "/portal/keys",
            content="&".join(f"f{i}=1" for i in range(100)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert many.status_code == 400
        unicode = await b.post(
            "/portal/keys",
            content=b"csrf=\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert unicode.status_code == 400


async def test_upgrade_without_stripe_configured_is_a_clear_503_page(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        await sign_in(b, caplog, email())
        answer = await submit(b, "/portal", "/portal/billing/checkout", plan="pro")
    assert answer.status_code == 503 and "billing_not_configured" in answer.text


async def test_a_pro_account_sees_pro_and_no_upgrade_button(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email())).text)
        assert key
        account_id = (await client.get("/v1/account", headers=key_headers(key))).json()["id"]
        await set_account_plan(client, account_id, "pro")
        page = (await b.get("/portal")).text
    assert re.search(r'id="plan"[^>]*>Pro<', page) and 'id="upgrade"' not in page


async def test_a_past_due_account_sees_the_banner(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email())).text)
        assert key
        account_id = (await client.get("/v1/account", headers=key_headers(key))).json()["id"]
        await sql("UPDATE accounts SET subscription_status = 'past_due' WHERE id = $1", account_id)
        page = (await b.get("/portal")).text
    assert 'id="past-due"' in page and 'action="/portal/billing/portal"' in page


async def test_the_connect_page_fills_in_this_deployment(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        await sign_in(b, caplog, email())
        page = (await b.get("/portal/connect")).text
    assert "https://api.agentmall.test/mcp" in page and 'id="curl-snippet"' in page


async def test_the_json_api_keeps_its_error_bodies(client: AsyncClient) -> None:
    answer = await client.get("/v1/nope")
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def test_logged_link_helper_reads_only_the_portal_logger(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AssertionError):
        logged_link(caplog, "nobody@example.com")
