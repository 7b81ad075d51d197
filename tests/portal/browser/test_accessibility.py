"""Every portal page, checked by axe-core (no serious or critical violation) and by keyboard (Tab
reaches the page's main submit button); every form carries its hidden CSRF field, and every
signed-in page the navigation. Screenshots: tests/portal/screenshots/a11y-*.png."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from playwright.async_api import Page

from tests.portal.browser.conftest import (
    AxeCheck,
    PortalServer,
    Screenshot,
    new_email,
    press_and_follow,
    sign_in,
    signin_link,
    tab_to,
    type_into,
    upgrade,
)

pytestmark = pytest.mark.browser

Arrive = Callable[[Page, PortalServer], Awaitable[None]]


@dataclass
class Case:
    arrive: Arrive
    submit: str | None  # the main form's submit button, reached by Tab
    signed_in: bool = True


async def landing(page: Page, server: PortalServer) -> None:
    await page.goto(f"{server.url}/")


async def login(page: Page, server: PortalServer) -> None:
    await page.goto(f"{server.url}/portal/login")


async def check_inbox(page: Page, server: PortalServer) -> None:
    await login(page, server)
    await type_into(page, "form#signin input[name=email]", new_email())
    await tab_to(page, "form#signin button")
    await press_and_follow(page)


async def confirm(page: Page, server: PortalServer) -> None:
    address = new_email()
    await login(page, server)
    await type_into(page, "form#signin input[name=email]", address)
    await tab_to(page, "form#signin button")
    await press_and_follow(page)
    await page.goto(await signin_link(server.inbox, address))


def signed_in(path: str, *, pro: bool = False, then: Arrive | None = None) -> Arrive:
    async def arrive(page: Page, server: PortalServer) -> None:
        await sign_in(page, server, new_email())
        if pro:
            await upgrade(page, server)
        await page.goto(f"{server.url}{path}")
        if then is not None:
            await then(page, server)

    return arrive


async def create_key(page: Page, server: PortalServer) -> None:
    await tab_to(page, "form#create-key button")
    await press_and_follow(page)


CASES = {
    "landing": Case(landing, "form#signin button", signed_in=False),
    "login": Case(login, "form#signin button", signed_in=False),
    "check-inbox": Case(check_inbox, None, signed_in=False),
    "confirm": Case(confirm, "form#confirm button", signed_in=False),
    "dashboard-free": Case(signed_in("/portal"), "form#upgrade button"),
    "dashboard-pro": Case(signed_in("/portal", pro=True), "form#manage-billing button"),
    "keys": Case(signed_in("/portal/keys", then=create_key), "form#create-key button"),
    "webhooks-free": Case(signed_in("/portal/webhooks"), "form#signout button"),
    "webhooks-pro": Case(signed_in("/portal/webhooks", pro=True), "form#add-webhook button"),
    "connect": Case(signed_in("/portal/connect"), "form#signout button"),
}
NAV = ["/portal", "/portal/keys", "/portal/webhooks", "/portal/connect"]


@pytest.mark.parametrize("name", CASES)
async def test_page_is_accessible_and_keyboard_reachable(
    name: str,
    portal_server: PortalServer,
    page: Page,
    axe_check: AxeCheck,
    screenshot: Screenshot,
) -> None:
    """Every check runs; the test lists all that failed on the page."""
    case = CASES[name]
    await case.arrive(page, portal_server)
    await screenshot(page, f"a11y-{name}")
    problems: list[str] = []
    try:
        await axe_check(page)
    except AssertionError as exc:
        problems.append(str(exc))

    bare = await page.evaluate(
        """() => [...document.forms]
            .filter(f => !f.querySelector('input[type=hidden][name=csrf]'))
            .map(f => f.id || f.className || f.getAttribute('action'))"""
    )
    if bare:
        problems.append(f"forms without a hidden csrf field: {bare}")
    if case.signed_in:
        links = await page.eval_on_selector_all(
            "nav a", "els => els.map(a => a.getAttribute('href'))"
        )
        if not set(NAV) <= set(links):
            problems.append(f"nav links {links}, expected {NAV}")
        if await page.locator("header form#signout").count() != 1:
            problems.append("no form#signout in this signed-in page's header")
        if name == "overview" and await page.locator("form#signout-all").count() != 1:
            problems.append("no form#signout-all on the overview")
    if name == "webhooks-free":
        if await page.locator("form#add-webhook").count():
            problems.append("a free account is offered form#add-webhook")
        if "upgrade" not in (await page.locator("main").inner_text()).lower():
            problems.append("a free account's webhooks page says nothing of upgrading")

    if case.submit is not None:
        await page.evaluate("() => document.activeElement && document.activeElement.blur()")
        try:
            await tab_to(page, case.submit)
        except AssertionError as exc:
            problems.append(str(exc))
    assert not problems, f"{page.url}:\n" + "\n".join(problems)
