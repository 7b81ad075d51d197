"""Review of the developer portal: odd inputs, sessions after they end, suspended accounts,
other accounts' resources and the headers of error pages (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from httpx import AsyncClient

from app.main import create_app
from app.webhooks.router import get_resolver
from tests.conftest import database_url, make_settings
from tests.portal.support import (
    browser,
    csrf_of,
    email,
    new_key,
    request_link,
    sign_in,
    sql,
    submit,
)
from tests.support.factories import ADMIN, key_headers, make_account, set_account_plan
from tests.support.upstash_bridge import UpstashBridge

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def _account_id(client: AsyncClient, key: str) -> str:
    return str((await client.get("/v1/account", headers=key_headers(key))).json()["id"])


def _key_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-key-id="([^"]+)"', page)


# --- odd inputs: a clear 4xx page, never a 500 ---


async def test_a_non_ascii_csrf_token_is_a_403_not_a_500(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        await b.get("/portal/login")  # the pre-session cookie
        anonymous = await b.post(
            "/portal/login", content="csrf=%C3%A9&email=a%40b.co", headers=FORM
        )
        await sign_in(b, caplog, email("rev"))
        signed_in = await b.post("/portal/keys", content="csrf=%E2%82%AC&name=x", headers=FORM)
    for answer in (anonymous, signed_in):
        assert answer.status_code == 403 and "csrf_refused" in answer.text
        assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("grace", ["\u00b2", "\u0663\u0666\u0660\u0660", "9" * 5000, "+5", " 1"])
async def test_odd_grace_periods_are_a_400_not_a_500(
    app: FastAPI, caplog: pytest.LogCaptureFixture, grace: str
) -> None:
    async with browser(app) as b:
        await sign_in(b, caplog, email("rev"))
        page = await b.get("/portal/keys")
        (key_id,) = _key_ids(page.text)
        answer = await b.post(
            f"/portal/keys/{key_id}/rotate",
            data={"csrf": csrf_of(page.text), "grace_seconds": grace},
        )
        assert answer.status_code == 400 and "invalid_form" in answer.text
        assert _key_ids((await b.get("/portal/keys")).text) == [key_id]  # nothing rotated


@pytest.mark.parametrize("name", ["bad\x00name", "\x00"])
async def test_a_key_name_with_nul_is_a_4xx_not_a_500(
    app: FastAPI, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    async with browser(app) as b:
        await sign_in(b, caplog, email("rev"))
        answer = await submit(b, "/portal/keys", "/portal/keys", name=name)
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert len(_key_ids((await b.get("/portal/keys")).text)) == 1


async def test_a_sign_in_email_with_nul_or_angle_brackets_is_a_422(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        for raw in ("a\x00b@example.com", "<script>@example.com", '"<b>"@example.com'):
            answer = await submit(b, "/portal/login", "/portal/login", email=raw)
            assert answer.status_code == 422 and "invalid_email" in answer.text
            assert "<script>" not in answer.text and "<b>" not in answer.text


async def test_repeated_fields_are_a_clear_4xx(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        page = await b.get("/portal/login")
        token = csrf_of(page.text)
        twice = await b.post(
            "/portal/login",
            content=f"csrf={token}&email=a%40example.com&email=b%40example.com",
            headers=FORM,
        )
        assert twice.status_code == 422 and "invalid_email" in twice.text
        await sign_in(b, caplog, email("rev"))
        page = await b.get("/portal")
        token = csrf_of(page.text)
        plans = await b.post(
            "/portal/billing/checkout", content=f"csrf={token}&plan=pro&plan=pro", headers=FORM
        )
        assert 400 <= plans.status_code < 500


async def test_odd_cookies_and_paths_are_pages(app: FastAPI) -> None:
    async with browser(app) as b:
        odd = {b"Cookie": ("__Host-am_session=" + "\u00e9" * 43).encode("latin-1")}
        assert (await b.get("/portal", headers=odd)).status_code == 401
        b.cookies.set("__Host-am_pre", "x" * 4000, domain="api.agentmall.test")
        assert (await b.get("/portal/login")).status_code == 200
        for path in ("/portal/keys/%00/revoke", "/portal/webhooks/a%2Fb/delete"):
            answer = await b.post(path, data={"csrf": "x"})
            assert 400 <= answer.status_code < 500
            assert answer.headers["content-type"].startswith("text/html")
        assert (await b.get("/portal/auth/%E2%82%AC")).status_code == 400


async def test_a_webhook_description_with_nul_is_a_422(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def public_dns(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    app.dependency_overrides[get_resolver] = lambda: public_dns
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email("rev"))).text)
        assert key
        await set_account_plan(client, await _account_id(client, key), "pro")
        answer = await submit(
            b,
            "/portal/webhooks",
            "/portal/webhooks",
            url="https://hooks.example.com/in",
            event_types="usage.threshold",
            description="a\x00b",
        )
        assert answer.status_code == 422 and "validation_error" in answer.text


# --- sessions that ended ---


@pytest.mark.parametrize("how", ["expired", "signed_out_everywhere"])
async def test_the_sign_in_page_after_a_session_ends_accepts_its_own_form(
    app: FastAPI, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    address = email("rev")
    async with browser(app) as b, browser(app) as other:
        await sign_in(b, caplog, address)
        if how == "expired":
            await sql("UPDATE portal_sessions SET expires_at = now() - interval '1 second'")
        else:
            await sign_in(other, caplog, address)
            assert (await submit(other, "/portal", "/portal/logout-all")).status_code == 303
        ended = await b.get("/portal")
        assert ended.status_code == 401 and 'id="signin"' in ended.text
        # the form on that page works the first time: its token matches what the browser keeps
        answer = await b.post("/portal/login", data={"csrf": csrf_of(ended.text), "email": address})
        assert answer.status_code == 200 and "Check your inbox" in answer.text


# --- suspended accounts: they see, they do not mint ---


async def _suspend(client: AsyncClient, account_id: str) -> None:
    answer = await client.post(f"/v1/admin/accounts/{account_id}/suspend", headers=ADMIN)
    assert answer.status_code == 200, answer.text


async def test_a_suspended_account_sees_its_pages_and_cannot_mint_keys(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email("rev"))).text)
        assert key
        await _suspend(client, await _account_id(client, key))
        for path in ("/portal", "/portal/keys", "/portal/webhooks", "/portal/connect"):
            page = await b.get(path)
            assert page.status_code == 200 and 'id="suspended"' in page.text, path
        (key_id,) = _key_ids((await b.get("/portal/keys")).text)
        created = await submit(b, "/portal/keys", "/portal/keys", name="more")
        rotated = await submit(b, "/portal/keys", f"/portal/keys/{key_id}/rotate")
        assert [created.status_code, rotated.status_code] == [403, 403]
        assert "account_suspended" in created.text and new_key(created.text) is None
        assert _key_ids((await b.get("/portal/keys")).text) == [key_id]


async def test_a_suspended_paid_account_cannot_add_a_webhook_endpoint(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def public_dns(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    app.dependency_overrides[get_resolver] = lambda: public_dns
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email("rev"))).text)
        assert key
        account_id = await _account_id(client, key)
        await set_account_plan(client, account_id, "pro")
        await _suspend(client, account_id)
        answer = await submit(
            b,
            "/portal/webhooks",
            "/portal/webhooks",
            url="https://hooks.example.com/in",
            event_types="usage.threshold",
        )
        assert answer.status_code == 403 and "account_suspended" in answer.text
        assert "whsec_" not in answer.text
        assert 'data-webhook-id="' not in (await b.get("/portal/webhooks")).text


# --- another account's resources ---


async def test_another_accounts_webhook_endpoint_cannot_be_deleted(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def public_dns(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    app.dependency_overrides[get_resolver] = lambda: public_dns
    _, victim_key = await make_account(client, plan="pro")
    made = await client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/v", "event_types": ["usage.threshold"]},
        headers=key_headers(victim_key),
    )
    assert made.status_code == 201, made.text
    endpoint_id = made.json()["id"]
    async with browser(app) as attacker:
        key = new_key((await sign_in(attacker, caplog, email("rev"))).text)
        assert key
        await set_account_plan(client, await _account_id(client, key), "pro")
        answer = await submit(
            attacker, "/portal/webhooks", f"/portal/webhooks/{endpoint_id}/delete"
        )
        assert answer.status_code == 404
        assert endpoint_id not in (await attacker.get("/portal/webhooks")).text
    listed = await client.get("/v1/webhooks", headers=key_headers(victim_key))
    assert [e["id"] for e in listed.json()["data"]] == [endpoint_id]


# --- links ---


async def test_one_link_used_by_two_concurrent_requests_opens_one_session(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        token = await request_link(b, caplog, email("rev"))
        page = await b.get(f"/portal/auth/{token}")
        form = {"csrf": csrf_of(page.text)}
        answers = await asyncio.gather(
            *(b.post(f"/portal/auth/{token}", data=form) for _ in range(4))
        )
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]
    keys = [new_key(a.text) for a in answers if a.status_code == 200]
    assert len(keys) == 1 and keys[0]
    conn = await asyncpg.connect(database_url())
    try:
        sessions = await conn.fetchval("SELECT count(*) FROM portal_sessions")
        accounts = await conn.fetchval("SELECT count(*) FROM accounts")
    finally:
        await conn.close()
    assert (sessions, accounts) == (1, 1)


async def test_the_email_is_normalised_for_links_accounts_and_limits(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    local = f"rev{uuid.uuid4().hex[:8]}"
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in local)
    spellings = [f"{local}@example.com", f"{local.upper()}@EXAMPLE.com", f"{fullwidth}@example.com"]
    statuses = []
    async with browser(app) as b:
        first = await sign_in(b, caplog, spellings[0])
        assert new_key(first.text)
        for spelling in spellings[1:]:
            answer = await submit(b, "/portal/login", "/portal/login", email=spelling)
            statuses.append(answer.status_code)
            assert f"<strong>{local}@example.com</strong>" in answer.text
        for _ in range(3):  # 5 links per email and hour, whatever the spelling
            answer = await submit(b, "/portal/login", "/portal/login", email=spellings[1])
            statuses.append(answer.status_code)
    assert statuses == [200, 200, 200, 200, 429]


async def test_a_rate_limited_sign_in_is_a_429_page_with_retry_after(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    address = email("rev")
    async with browser(app) as b:
        for _ in range(5):
            await submit(b, "/portal/login", "/portal/login", email=address)
        answer = await submit(b, "/portal/login", "/portal/login", email=address)
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 0
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


# --- headers and what pages carry ---


async def test_error_pages_carry_the_page_headers_and_leak_nothing(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        await sign_in(b, caplog, email("rev"))
        answers = [
            await b.get("/portal/nope"),
            await b.put("/portal/keys"),
            await b.post("/portal/keys", data={"csrf": "0"}),
            await b.get("/portal/auth/" + "a" * 300),
        ]
    for answer in answers:
        assert 400 <= answer.status_code < 500
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "Traceback" not in answer.text and "sqlalchemy" not in answer.text.lower()


async def test_the_csp_has_no_inline_allowances_and_pages_need_none(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        pages = [(await b.get("/")).text, (await b.get("/portal/login")).text]
        key = new_key((await sign_in(b, caplog, email("rev"))).text)
        assert key
        for path in ("/portal", "/portal/keys", "/portal/webhooks", "/portal/connect"):
            answer = await b.get(path)
            csp = answer.headers["content-security-policy"]
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
            # nothing the pages do not use: no fetches, no images from anywhere but data:
            assert "connect-src" not in csp and "img-src data:;" in csp
            pages.append(answer.text)
    for page in pages:
        assert " style=" not in page and not re.search(r"<script(?![^>]*\bsrc=)", page)
        assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers


async def test_no_api_key_in_a_url_a_cookie_or_a_log_line(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(app) as b:
        first = await sign_in(b, caplog, email("rev"))
        made = await submit(b, "/portal/keys", "/portal/keys", name="two")
        keys = [new_key(first.text), new_key(made.text)]
        (key_id, _) = _key_ids(made.text)
        rotated = await submit(b, "/portal/keys", f"/portal/keys/{key_id}/rotate")
        keys.append(new_key(rotated.text))
        answers = [first, made, rotated]
        jar = "; ".join(f"{c.name}={c.value}" for c in b.cookies.jar)
    for key in keys:
        assert key
        assert all(
            key not in str(a.url) and key not in a.headers.get("location", "") for a in answers
        )
        assert all(key not in c for a in answers for c in a.headers.get_list("set-cookie"))
        assert key not in jar
        assert all(key not in r.getMessage() for r in caplog.records)
    for answer in answers:
        assert answer.headers["cache-control"] == "no-store"


async def test_injected_markup_in_names_and_webhooks_is_escaped(
    app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def public_dns(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    app.dependency_overrides[get_resolver] = lambda: public_dns
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    async with browser(app) as b:
        key = new_key((await sign_in(b, caplog, email("rev"))).text)
        assert key
        await set_account_plan(client, await _account_id(client, key), "pro")
        made = await submit(b, "/portal/keys", "/portal/keys", name=evil[:100])
        hook = await submit(
            b,
            "/portal/webhooks",
            "/portal/webhooks",
            url=f"https://hooks.example.com/in?q={evil}",
            event_types="usage.threshold",
            description=evil,
        )
        assert made.status_code == 200 and hook.status_code in (200, 422), hook.text
        pages = [made.text, hook.text, (await b.get("/portal/webhooks")).text]
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page


# --- billing from the portal ---


@pytest.fixture
async def stripe_app(
    backend: str,
    redis_prefix: str,
    bridge: UpstashBridge,
    raw_redis: aioredis.Redis,
    clean_database: None,
) -> AsyncIterator[FastAPI]:
    """The app with Stripe configured (no call reaches Stripe in these tests)."""
    settings = make_settings(
        backend,
        redis_prefix,
        bridge.url,
        STRIPE_SECRET_KEY="sk_test_agentmall0123456789",
        STRIPE_API_BASE="https://stripe.test",
    )
    application = create_app(settings)
    yield application
    await application.state.services.close()


async def test_upgrading_an_already_subscribed_account_is_a_clear_409_page(
    stripe_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(stripe_app) as b:
        key = new_key((await sign_in(b, caplog, email("rev"))).text)
        assert key
        await sql(
            "UPDATE accounts SET plan_code = 'pro', stripe_customer_id = 'cus_1', "
            "stripe_subscription_id = 'sub_1', subscription_status = 'active'"
        )
        page = await b.get("/portal")
        assert 'id="upgrade"' not in page.text and 'id="manage-billing"' in page.text
        answer = await b.post(
            "/portal/billing/checkout", data={"csrf": csrf_of(page.text), "plan": "pro"}
        )
    assert answer.status_code == 409 and "already_subscribed" in answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "location" not in answer.headers
    csp = answer.headers["content-security-policy"]
    assert "form-action 'self' https://checkout.stripe.com https://billing.stripe.com" in csp


async def test_a_suspended_account_cannot_start_checkout(
    stripe_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with browser(stripe_app) as b:
        await sign_in(b, caplog, email("rev"))
        await sql("UPDATE accounts SET status = 'suspended'")
        answer = await submit(b, "/portal", "/portal/billing/checkout", plan="pro")
    assert answer.status_code == 403 and "account_suspended" in answer.text


# --- sign-in: login CSRF and races ---


async def test_another_browsers_form_token_cannot_sign_this_browser_in(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Login CSRF: the attacker's own link and form token, posted from the victim's browser."""
    async with browser(app) as attacker, browser(app) as victim:
        token = await request_link(attacker, caplog, email("rev"))
        foreign = csrf_of((await attacker.get(f"/portal/auth/{token}")).text)
        await victim.get("/")  # the victim has a pre-session cookie of its own
        answer = await victim.post(f"/portal/auth/{token}", data={"csrf": foreign})
        assert answer.status_code == 403 and "__Host-am_session" not in victim.cookies
        bare = await victim.post(f"/portal/auth/{token}", content=b"", headers=FORM)
        assert bare.status_code == 403
        # the link was not used up by the refused attempts
        assert (await attacker.get(f"/portal/auth/{token}")).status_code == 200


async def test_two_links_of_a_new_email_used_at_once_make_one_account(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    address = email("rev")
    async with browser(app) as one, browser(app) as two:
        tokens = [await request_link(b, caplog, address) for b in (one, two)]
        forms = [
            {"csrf": csrf_of((await b.get(f"/portal/auth/{t}")).text)}
            for b, t in zip((one, two), tokens, strict=True)
        ]
        answers = await asyncio.gather(
            *(
                b.post(f"/portal/auth/{t}", data=f)
                for b, t, f in zip((one, two), tokens, forms, strict=True)
            )
        )
        # one shows the new account's key, the other signs in to that account (not a 409)
        assert sorted(a.status_code for a in answers) == [200, 303]
        assert len([a for a in answers if new_key(a.text)]) == 1
        for b in (one, two):
            assert (await b.get("/portal")).status_code == 200
    conn = await asyncpg.connect(database_url())
    try:
        accounts = await conn.fetchval("SELECT count(*) FROM accounts WHERE email = $1", address)
    finally:
        await conn.close()
    assert accounts == 1


# --- where sign-in links go ---


@pytest.fixture
async def deployed_app(
    backend: str,
    redis_prefix: str,
    bridge: UpstashBridge,
    raw_redis: aioredis.Redis,
    clean_database: None,
) -> AsyncIterator[FastAPI]:
    """The app as deployed on Vercel (`VERCEL=1`), with no SMTP_URL."""
    application = create_app(make_settings(backend, redis_prefix, bridge.url, VERCEL="1"))
    yield application
    await application.state.services.close()


async def test_a_deployment_without_smtp_never_logs_a_sign_in_link(
    deployed_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """A link signs in (and can mint keys): it is logged on a developer's machine only, never
    into a deployment's logs, which more people read than the mailbox's owner."""
    address = email("rev")
    async with browser(deployed_app) as b:
        answer = await submit(b, "/portal/login", "/portal/login", email=address)
    assert answer.status_code == 503 and "email_unavailable" in answer.text
    assert not any("/portal/auth/" in r.getMessage() for r in caplog.records)
    conn = await asyncpg.connect(database_url())
    try:
        query = "SELECT count(*) FROM portal_login_links WHERE email = $1"
        assert await conn.fetchval(query, address) == 0
    finally:
        await conn.close()
