"""A developer's whole life in the portal, in headless Chromium, by keyboard only: Tab to a
control, type, press Enter (locators only read the page). Sign in by emailed link, get the first
key, create another, call the API with it (httpx: a key never goes in a URL), watch the usage,
upgrade to Pro through the Stripe stand-in, add a webhook, rotate and revoke keys, fall past due.
Every page visited is screenshotted (tests/portal/screenshots/flow-*.png)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from playwright.async_api import Page

from app.core.apikeys import display_prefix, looks_like_key
from tests.portal.browser.conftest import (
    PortalServer,
    Screenshot,
    choose,
    first_status,
    focused_text,
    new_email,
    press_and_follow,
    sign_in,
    signin_link,
    tab_to,
    type_into,
)

pytestmark = pytest.mark.browser

NAV = {"Overview": "/portal", "Keys": "/portal/keys", "Webhooks": "/portal/webhooks"}
NAV["Connect"] = "/portal/connect"


async def go(page: Page, label: str) -> None:
    """Follow a nav link by keyboard."""
    await tab_to(page, f'nav a[href="{NAV[label]}"]')
    assert await focused_text(page) == label
    await press_and_follow(page)


async def submit(page: Page, button: str, label: str) -> tuple[str, int]:
    """Tab to a form's button, check its label, press Enter, wait for the next page; answers
    how the submission was answered (method, status: 303 when it redirected)."""
    await tab_to(page, button)
    assert await focused_text(page) == label
    return await first_status(await press_and_follow(page))


async def text(page: Page, selector: str) -> str:
    return (await page.locator(selector).inner_text()).strip()


async def key_row(page: Page, key: str) -> str:
    """The `data-key-id` of the keys table's row showing `key`'s prefix."""
    rows = page.locator("table#keys tr[data-key-id]")
    for index in range(await rows.count()):
        if display_prefix(key) in await rows.nth(index).inner_text():
            return str(await rows.nth(index).get_attribute("data-key-id"))
    raise AssertionError(f"no row in table#keys shows {display_prefix(key)}")


async def expiry_cell(page: Page, key_id: str) -> str:
    """The text of the row's "expires" column (found by its header)."""
    headers = [h.lower() for h in await page.locator("table#keys thead th").all_inner_texts()]
    column = next(i for i, h in enumerate(headers) if "expire" in h or "stops" in h)
    cells = page.locator(f'tr[data-key-id="{key_id}"] > :is(td, th)')
    return (await cells.nth(column).inner_text()).strip()


async def test_whole_portal_flow_by_keyboard(
    portal_server: PortalServer,
    api: httpx.AsyncClient,
    page: Page,
    screenshot: Screenshot,
    console_errors: list[str],
) -> None:
    server, http, address = portal_server, api, new_email()
    free = next(p for p in (await http.get("/v1/plans")).json()["data"] if p["code"] == "free")

    # the landing page: plans, and the sign-in form
    await page.goto(f"{server.url}/")
    await screenshot(page, "flow-01-landing")
    assert await page.locator("h1").count() == 1
    plans = " ".join(await page.locator("table#plans tr").all_inner_texts())
    assert "Free" in plans and "Pro" in plans, plans
    assert await page.get_by_label("Email").get_attribute("name") == "email"
    assert await page.locator("form#signin input[name=csrf][type=hidden]").count() == 1
    assert await page.locator("form#signin").get_attribute("action") == "/portal/login"
    await type_into(page, "form#signin input[name=email]", address)
    assert await submit(page, "form#signin button", "Email me a sign-in link") == ("POST", 200)
    assert await text(page, "h1") == "Check your inbox"
    await screenshot(page, "flow-02-check-inbox")

    # the mail, the link, the confirmation
    message = await server.inbox.latest(address)
    assert message["Subject"] == "Your AgentMall sign-in link"
    link = await signin_link(server.inbox, address)
    assert link.startswith(f"{server.url}/portal/auth/"), link
    await page.goto(link)
    await screenshot(page, "flow-03-confirm")
    assert await page.locator("form#confirm").get_attribute("action") in {
        link,
        link[len(server.url) :],
    }
    assert await submit(page, "form#confirm button", "Sign in") == ("POST", 200)

    # a new account: the dashboard shows its first key, once
    first_key = await text(page, "code#new-key")
    assert looks_like_key(first_key), first_key
    assert await page.locator("button#copy-key").count() == 1
    await screenshot(page, "flow-04-dashboard-first-key")
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == "am_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"], cookie
    assert "Free" in await text(page, "#plan")

    # Keys: create one
    await go(page, "Keys")
    await screenshot(page, "flow-05-keys")
    await type_into(page, "form#create-key input[name=name]", "browser test")
    assert await submit(page, "form#create-key button", "Create key") == ("POST", 200)
    key = await text(page, "code#new-key")
    assert looks_like_key(key) and key != first_key
    assert await page.locator("button#copy-key").count() == 1
    await screenshot(page, "flow-06-new-key")

    # three calls with it, then the dashboard shows them
    for _ in range(3):
        answered = await http.get("/v1/products", headers={"X-API-Key": key})
        assert answered.status_code == 200, answered.text
    await go(page, "Overview")
    bar = page.locator("#quota-bar")
    assert await bar.get_attribute("role") == "progressbar"
    assert int(await bar.get_attribute("aria-valuenow") or -1) >= 3
    assert await bar.get_attribute("aria-valuemax") == str(free["included_calls"])
    assert "3" in await text(page, "#used")
    today = datetime.now(UTC).date().isoformat()
    rect = page.locator(f'svg#usage-chart rect[data-date="{today}"]')
    assert int(await rect.get_attribute("data-count") or -1) >= 3
    endpoints = await page.locator("table#endpoints tr").all_inner_texts()
    assert any("products.list" in row for row in endpoints), endpoints
    await screenshot(page, "flow-07-dashboard-usage")

    # Upgrade: Stripe's Checkout (the stand-in), pay, back; the webhooks made the account Pro
    assert await submit(page, "form#upgrade button", "Upgrade to Pro") == ("POST", 303)
    assert page.url.startswith(f"{server.stripe.url}/checkout/"), page.url
    await screenshot(page, "flow-08-stripe-checkout")
    await submit(page, "button", "Pay")
    assert [o[1:] for o in server.stripe.outcomes] == [(200, "applied")] * 2, server.stripe.outcomes
    (session,) = server.stripe.sessions.values()
    assert page.url == session["success_url"]
    await screenshot(page, "flow-09-back-from-checkout")
    await page.goto(f"{server.url}/portal")
    assert "Pro" in await text(page, "#plan")
    assert await page.locator("form#upgrade").count() == 0
    assert await page.locator("form#manage-billing").count() == 1
    await screenshot(page, "flow-10-dashboard-pro")

    # Webhooks (Pro): add an endpoint, see its secret once
    await go(page, "Webhooks")
    await screenshot(page, "flow-11-webhooks")
    hook_url = f"{server.stripe.url}/hooks/agentmall"  # a loopback host the settings allow
    await type_into(page, "form#add-webhook input[name=url]", hook_url)
    await tab_to(page, "form#add-webhook input[type=checkbox]")
    if not await page.evaluate("() => document.activeElement.checked"):
        await page.keyboard.press("Space")
    await tab_to(page, "form#add-webhook button[type=submit], form#add-webhook button:not([type])")
    await press_and_follow(page)
    assert await text(page, "code#new-secret")
    assert hook_url in await text(page, "table#webhooks")
    await screenshot(page, "flow-12-webhook-secret")
    await tab_to(page, "table#webhooks tr form button")  # its delete form
    await press_and_follow(page)
    assert hook_url not in await page.locator("main").inner_text()

    # Connect: the snippets name this deployment
    await go(page, "Connect")
    assert server.url in await text(page, "pre#curl-snippet")
    assert server.url in await text(page, "pre#mcp-snippet")
    await screenshot(page, "flow-13-connect")

    # rotate the created key with an hour's grace: both answer, the old row shows its end
    await go(page, "Keys")
    old_id = await key_row(page, key)
    no_expiry = await expiry_cell(page, old_id)
    row = f'tr[data-key-id="{old_id}"]'
    grace = page.locator(f"{row} form.rotate-key select[name=grace_seconds] option")
    assert {"0", "3600", "86400"} <= {
        await grace.nth(i).get_attribute("value") for i in range(await grace.count())
    }
    await choose(page, f"{row} form.rotate-key select[name=grace_seconds]", "3600")
    assert await submit(page, f"{row} form.rotate-key button", "Rotate") == ("POST", 200)
    rotated = await text(page, "code#new-key")
    assert looks_like_key(rotated) and rotated not in {key, first_key}
    await screenshot(page, "flow-14-rotated")
    for each in (key, rotated):
        assert (await http.get("/v1/products", headers={"X-API-Key": each})).status_code == 200
    await go(page, "Keys")
    ends = await expiry_cell(page, old_id)
    assert ends and ends != no_expiry, (no_expiry, ends)

    # revoke the rotated key: 303 back to the list, and it stops at once
    rotated_id = await key_row(page, rotated)
    revoke = f'tr[data-key-id="{rotated_id}"] form.revoke-key button'
    assert await submit(page, revoke, "Revoke") == ("POST", 303)
    assert page.url == f"{server.url}/portal/keys"
    assert await page.locator(f'tr[data-key-id="{rotated_id}"] form.revoke-key').count() == 0
    assert (await http.get("/v1/products", headers={"X-API-Key": rotated})).status_code == 401
    assert (await http.get("/v1/products", headers={"X-API-Key": key})).status_code == 200
    await screenshot(page, "flow-15-revoked")

    # past due: the banner, and Manage billing opens Stripe's Customer Portal
    await server.stripe.set_status(session_subscription(server), "past_due")
    assert server.stripe.outcomes[-1][1:] == (200, "applied"), server.stripe.outcomes
    await go(page, "Overview")
    assert await page.locator("#past-due").count() == 1
    assert "past" in (await text(page, "#subscription-status")).lower()
    await screenshot(page, "flow-16-past-due")
    assert await submit(page, "form#manage-billing button", "Manage billing") == ("POST", 303)
    assert page.url.startswith(f"{server.stripe.url}/billing/"), page.url

    # sign out: the session ends; signing in again (an existing account) goes to the dashboard
    await page.goto(f"{server.url}/portal")
    await submit(page, "form#signout button", "Sign out")
    assert not [c for c in await page.context.cookies() if c["name"] == "am_session"]
    after = await page.goto(f"{server.url}/portal")
    assert await page.locator("#plan").count() == 0
    if after is not None and after.status == 401:  # the refusal page, which Chromium logs
        forget(console_errors, f"status of 401 (Unauthorized) [{server.url}/portal]")
    signed = await sign_in(page, server, address)
    assert signed == ("POST", 303) and page.url == f"{server.url}/portal"
    assert await page.locator("code#new-key").count() == 0
    assert "Pro" in await text(page, "#plan")

    # sign out everywhere
    await tab_to(page, "form#signout-all button")
    await press_and_follow(page)
    assert not [c for c in await page.context.cookies() if c["name"] == "am_session"]


def forget(console_errors: list[str], ending: str) -> None:
    """Drop an error the test caused on purpose (an expected 4xx page)."""
    console_errors[:] = [e for e in console_errors if not e.endswith(ending)]


def session_subscription(server: PortalServer) -> str:
    (subscription,) = server.stripe.subscriptions
    return subscription


async def test_the_last_key_cannot_be_revoked(
    portal_server: PortalServer,
    api: httpx.AsyncClient,
    page: Page,
    screenshot: Screenshot,
    console_errors: list[str],
) -> None:
    await sign_in(page, portal_server, new_email())
    first_key = await text(page, "code#new-key")
    await go(page, "Keys")
    only = await key_row(page, first_key)
    _, status = await submit(page, f'tr[data-key-id="{only}"] form.revoke-key button', "Revoke")
    if status >= 400:  # the refusal, re-rendered with its status: Chromium logs it
        forget(console_errors, f"[{portal_server.url}/portal/keys/{only}/revoke]")
    alert = page.locator(".error")
    assert await alert.count() == 1
    assert await alert.get_attribute("role") == "alert"
    assert re.search(r"\blast\b.*\bkey\b", await alert.inner_text(), re.I), await alert.inner_text()
    await screenshot(page, "flow-last-key-refused")
    assert await page.locator(f'tr[data-key-id="{only}"]').count() == 1
    assert (await api.get("/v1/products", headers={"X-API-Key": first_key})).status_code == 200
