"""The developer portal in a real browser: headless Chromium (Playwright's async API) against the
real app served by uvicorn on a loopback port, on real PostgreSQL and Redis, with sign-in mail
going to a real SMTP server (aiosmtpd) and Stripe played by a stand-in over real HTTP.

The Stripe stand-in is `FakeStripe` (the API the bootstrap and the billing code call) served by
`HttpStandIn`, plus what a person sees: a Checkout page with a "Pay" button and a Customer Portal
page. Paying delivers `customer.subscription.created` and `checkout.session.completed`, signed by
Stripe's own signing code, to the app's `/v1/stripe/webhook`, then sends the browser on to the
session's `success_url`, as Stripe does.

Everything runs on the test's event loop (uvicorn for the app and the stand-in, Playwright's
driver), so a test reads the stand-in's state and the inbox directly. Screenshots go to
`tests/portal/screenshots/` (written at test time, gitignored).
"""

from __future__ import annotations

import asyncio
import email
import io
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from aiosmtpd.controller import Controller
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, ConsoleMessage, Page, Response, async_playwright

from app.billing import bootstrap
from app.core.config import Settings
from app.main import create_app
from tests.billing.conftest import WEBHOOK_SECRET, signed
from tests.conftest import make_settings
from tests.support import stripe_objects as so
from tests.support.fake_stripe import FakeRequest, FakeStripe
from tests.support.http_stand_in import HttpStandIn
from tests.support.settings import PATIENT_REDIS_TIMEOUT_MS

CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/test.sh installs it)
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"
SENDER = "portal@agentmall.test"
BLOCKING = {"serious", "critical"}  # axe impacts that fail a test
TIMEOUT_MS = 10_000

# -- mail ----------------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping every message it receives (in its own thread)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    async def latest(self, address: str, *, after: int = 0, timeout: float = 10) -> EmailMessage:
        """The newest message to `address` among those after the first `after` (waits for it)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages[after:] if address in str(m["To"])]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail to {address} within {timeout} s")
            await asyncio.sleep(0.05)


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    assert body is not None, "the message has no text part"
    return str(body.get_content())  # type: ignore[attr-defined]


async def signin_link(inbox: Inbox, address: str, *, after: int = 0) -> str:
    """The `/portal/auth/...` link in the latest message to `address`."""
    found = re.search(
        r"https?://[^\s\"'<>]+/portal/auth/[^\s\"'<>]+",
        text_of(await inbox.latest(address, after=after)),
    )
    assert found, "the sign-in mail carries no /portal/auth/ link"
    return found.group(0)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A real SMTP server on 127.0.0.1; yields what it receives."""
    received = Inbox()
    received.port = free_port()
    controller = Controller(received, hostname="127.0.0.1", port=received.port)
    controller.start()
    yield received
    controller.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- Stripe --------------------------------------------------------------------------------------

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>{title}</title></head>
<body><main><h1>{title}</h1>{body}</main></body></html>"""


class StripeStandIn:
    """`FakeStripe` plus customers, Checkout Sessions, subscriptions, portal sessions and the
    pages a person sees; `app_url` (set once the app serves) receives the signed webhooks."""

    def __init__(self) -> None:
        self.fake = FakeStripe()
        self.url = ""
        self.app_url = ""
        self.sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.deliveries: list[tuple[str, int, Any]] = []  # (event type, status, answer)
        id_ = r"(?P<id>[^/]+)"
        self.fake.route("POST", r"/v1/customers", self._create_customer)
        self.fake.route("POST", r"/v1/checkout/sessions", self._create_session)
        self.fake.route("GET", r"/v1/subscriptions", self._list_subscriptions)
        self.fake.route("GET", rf"/v1/subscriptions/{id_}", self._get_subscription)
        self.fake.route("POST", r"/v1/billing_portal/sessions", self._create_portal)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        """`HttpStandIn`'s handler: the pages, else the API (FakeStripe's respx dispatch)."""
        path = request.url.path
        if paying := re.fullmatch(r"/checkout/([^/]+)/pay", path):
            return await self._pay(paying.group(1))
        if opened := re.fullmatch(r"/checkout/([^/]+)", path):
            return self._checkout_page(opened.group(1))
        if re.fullmatch(r"/billing/[^/]+", path):
            return html_page("Customer portal (Stripe stand-in)", "<p>Your subscription.</p>")
        return self.fake._dispatch(request)  # FakeStripe's dispatch, used here over real HTTP

    # the API

    def _create_customer(self, request: FakeRequest) -> httpx.Response:
        p = request.params
        return self.fake.json(so.customer(email=p.get("email"), metadata=p.get("metadata", {})))

    def _create_session(self, request: FakeRequest) -> httpx.Response:
        p = request.params
        session = so.checkout_session(
            **{k: p.get(k) for k in ("mode", "customer", "client_reference_id", "success_url")},
            cancel_url=p.get("cancel_url"),
            metadata=p.get("metadata", {}),
            expires_at=int(p["expires_at"]),
            status="open",
            payment_status="unpaid",
            subscription=None,
        )
        session["url"] = f"{self.url}/checkout/{session['id']}"
        session["line_items_requested"] = p.get("line_items", [])  # for the subscription
        self.sessions[session["id"]] = session
        return self.fake.json(session)

    def _get_subscription(self, request: FakeRequest) -> httpx.Response:
        found = self.subscriptions.get(request.match["id"])
        return (
            self.fake.json(found)
            if found
            else self.fake.missing("subscription", request.match["id"])
        )

    def _list_subscriptions(self, request: FakeRequest) -> httpx.Response:
        mine = [
            s
            for s in self.subscriptions.values()
            if s["customer"] == request.params.get("customer")
        ]
        return self.fake.json(so.listing(mine, "/v1/subscriptions"))

    def _create_portal(self, request: FakeRequest) -> httpx.Response:
        p = request.params
        portal = so.portal_session(customer=p["customer"], return_url=p.get("return_url"))
        portal["url"] = f"{self.url}/billing/{portal['id']}"
        return self.fake.json(portal)

    # the pages and what paying does

    def _checkout_page(self, session_id: str) -> httpx.Response:
        if session_id not in self.sessions:
            return httpx.Response(404, text="no such Checkout Session")
        form = (
            f'<form method="post" action="/checkout/{session_id}/pay">'
            '<button type="submit">Pay</button></form>'
        )
        return html_page("Subscribe to AgentMall Pro (Stripe stand-in)", form)

    async def _pay(self, session_id: str) -> httpx.Response:
        session = self.sessions[session_id]
        sub = self.put_subscription(session)
        await self.deliver(so.event("customer.subscription.created", sub))
        completed = {
            **session,
            "status": "complete",
            "payment_status": "paid",
            "subscription": sub["id"],
        }
        completed.pop("line_items_requested")
        await self.deliver(so.event("checkout.session.completed", completed))
        return httpx.Response(303, headers={"Location": session["success_url"]})

    def put_subscription(self, session: dict[str, Any]) -> dict[str, Any]:
        """The subscription Checkout creates: the session's prices, a period containing now."""
        start = int(time.time()) - 3600
        sub = so.subscription(
            customer=session["customer"],
            status="active",
            metadata=dict(session["metadata"]),
        )
        items = []
        for line in session["line_items_requested"]:
            item = {**sub["items"]["data"][0], "id": f"si_{uuid.uuid4().hex[:14]}"}
            item["price"] = self.fake.prices[line["price"]]
            item["current_period_start"], item["current_period_end"] = start, start + 30 * 86_400
            item["subscription"] = sub["id"]
            items.append(item)
        sub["items"]["data"] = items
        self.subscriptions[sub["id"]] = sub
        return sub

    async def set_status(self, subscription_id: str, status: str) -> None:
        """Stripe changes a subscription's status and says so."""
        sub = self.subscriptions[subscription_id]
        sub["status"] = status
        await self.deliver(so.event("customer.subscription.updated", sub))

    async def deliver(self, event: dict[str, Any]) -> None:
        body, headers = signed(event)
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(
                f"{self.app_url}/v1/stripe/webhook", content=body, headers=headers
            )
        shown = (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else answer.text
        )
        self.deliveries.append((event["type"], answer.status_code, shown))

    @property
    def outcomes(self) -> list[tuple[str, int, Any]]:
        """Each delivery as (type, status, outcome): all should be (…, 200, "applied")."""
        return [
            (t, s, a.get("outcome") if isinstance(a, dict) else a) for t, s, a in self.deliveries
        ]


def html_page(title: str, body: str) -> httpx.Response:
    return httpx.Response(200, html=PAGE.format(title=title, body=body))


# -- the app ---------------------------------------------------------------------------------------


@dataclass
class PortalServer:
    url: str
    settings: Settings
    stripe: StripeStandIn
    inbox: Inbox

    def http(self) -> httpx.AsyncClient:
        """A plain HTTP client to the server (API calls with a key: never through the browser)."""
        return httpx.AsyncClient(base_url=self.url, timeout=30)


@pytest.fixture
async def portal_server(
    inbox: Inbox, redis_prefix: str, raw_redis: aioredis.Redis, clean_database: None
) -> AsyncIterator[PortalServer]:
    """The real app on a loopback port, billing bootstrapped against the Stripe stand-in."""
    stand_in = StripeStandIn()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with HttpStandIn(stand_in) as stripe_url:
        stand_in.url, stand_in.app_url = stripe_url, url
        settings = make_settings(
            "redis",
            redis_prefix,
            PUBLIC_BASE_URL=url,
            SMTP_URL=f"smtp://127.0.0.1:{inbox.port}",
            EMAIL_FROM=SENDER,
            STRIPE_SECRET_KEY="sk_test_portal0123456789",
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            STRIPE_API_BASE=stripe_url,
            WEBHOOK_ALLOW_HOSTS=stripe_url.removeprefix("http://"),
            REDIS_TIMEOUT_MS=PATIENT_REDIS_TIMEOUT_MS,
            SIGNUPS_PER_IP_PER_HOUR=1000,  # every browser request comes from 127.0.0.1
        )
        out, err = io.StringIO(), io.StringIO()
        assert await bootstrap.run(settings, out, err) == 0, err.getvalue()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings), lifespan="on", log_level="warning", access_log=False
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(30):
                while not server.started:
                    if task.done():
                        task.result()  # raises what stopped it
                    await asyncio.sleep(0.01)
            yield PortalServer(url, settings, stand_in, inbox)
        finally:
            server.should_exit = True
            await task
            sock.close()


@pytest.fixture
async def api(portal_server: PortalServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to the served app, for API calls with a key (never through the browser)."""
    async with portal_server.http() as client:
        yield client


# -- the browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


@pytest.fixture
def console_errors() -> list[str]:
    """What the browser reported as errors (console.error, uncaught exceptions); the `page`
    fixture fails the test if any remain at its end (a test may remove one it expects)."""
    return []


@pytest.fixture
async def page(browser: Browser, console_errors: list[str]) -> AsyncIterator[Page]:
    """A page in a fresh context; any console error or uncaught exception fails the test."""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    tab = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            source = message.location.get("url") or tab.url
            console_errors.append(f"console.error on {tab.url}: {message.text} [{source}]")

    tab.on("console", on_console)
    tab.on(
        "pageerror", lambda exc: console_errors.append(f"uncaught exception on {tab.url}: {exc}")
    )
    yield tab
    await context.close()
    assert not console_errors, "the browser reported errors:\n" + "\n".join(console_errors)


Screenshot = Callable[[Page, str], Awaitable[Path]]


@pytest.fixture
def screenshot() -> Screenshot:
    async def take(tab: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await tab.screenshot(path=str(path), full_page=True)
        return path

    return take


async def axe_violations(tab: Page) -> list[dict[str, Any]]:
    """Every axe violation on the page (all impacts)."""
    return list((await Axe().run(tab)).response["violations"])


AxeCheck = Callable[[Page], Awaitable[None]]


@pytest.fixture
def axe_check() -> AxeCheck:
    async def check(tab: Page) -> None:
        found = await axe_violations(tab)
        lines = {
            v[
                "id"
            ]: f"{v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes']]}"
            for v in found
        }
        for v in found:  # the lesser ones are shown (pytest -s, or on failure), not failed
            if v.get("impact") not in BLOCKING:
                print(f"axe on {tab.url}: {lines[v['id']]}")
        blocking = [lines[v["id"]] for v in found if v.get("impact") in BLOCKING]
        assert not blocking, f"axe on {tab.url}:\n" + "\n".join(blocking)

    return check


# -- keyboard helpers ------------------------------------------------------------------------------


async def focused_matches(tab: Page, selector: str) -> bool:
    return bool(
        await tab.evaluate(
            "s => !!document.activeElement && document.activeElement.matches(s)", selector
        )
    )


async def tab_to(tab: Page, selector: str, *, limit: int = 80) -> None:
    """Press Tab until the focused element matches `selector` (fails if it never does)."""
    if await focused_matches(tab, selector):
        return
    for _ in range(limit):
        await tab.keyboard.press("Tab")
        if await focused_matches(tab, selector):
            return
    described = await tab.evaluate(
        "() => document.activeElement && document.activeElement.outerHTML"
    )
    raise AssertionError(f"{limit} Tabs on {tab.url} never reached {selector}; focus: {described}")


async def focused_text(tab: Page) -> str:
    return str(
        await tab.evaluate(
            "() => (document.activeElement.innerText || document.activeElement.value || '').trim()"
        )
    )


async def press_and_follow(tab: Page, key: str = "Enter") -> Response:
    """Press `key` on the focused element, wait for the page it leads to; answers that page's
    response (`first_status` tells how the submission itself was answered)."""
    async with tab.expect_navigation() as navigation:
        await tab.keyboard.press(key)
    response = await navigation.value
    assert response is not None, f"no response for the navigation from {tab.url}"
    return response


async def first_status(response: Response) -> tuple[str, int]:
    """(method, status) of the request that started a navigation (before any redirect)."""
    request = response.request
    while request.redirected_from is not None:
        request = request.redirected_from
    first = await request.response()
    assert first is not None
    return request.method, first.status


async def type_into(tab: Page, selector: str, text: str) -> None:
    """Tab to a field and type into it."""
    await tab_to(tab, selector)
    await tab.keyboard.type(text)


async def choose(tab: Page, selector: str, value: str, *, limit: int = 20) -> None:
    """Tab to a <select> and pick `value` with the arrow keys."""
    await tab_to(tab, selector)
    for key in ("ArrowDown", "ArrowUp"):
        for _ in range(limit):
            if await tab.evaluate("() => document.activeElement.value") == value:
                return
            await tab.keyboard.press(key)
    raise AssertionError(f"the arrow keys never chose {value} in {selector}")


def new_email() -> str:
    return f"dev-{uuid.uuid4().hex[:10]}@example.com"


async def sign_in(tab: Page, server: PortalServer, address: str) -> tuple[str, int]:
    """From /portal/login to signed in, by keyboard; answers how the confirmation was answered
    (200: a new account's dashboard; 303: to the dashboard)."""
    sent = len(server.inbox.messages)
    await tab.goto(f"{server.url}/portal/login")
    await type_into(tab, "form#signin input[name=email]", address)
    await tab_to(tab, "form#signin button")
    await press_and_follow(tab)
    link = await signin_link(server.inbox, address, after=sent)
    await tab.goto(link)
    await tab_to(tab, "form#confirm button")
    return await first_status(await press_and_follow(tab))


async def upgrade(tab: Page, server: PortalServer) -> None:
    """From the dashboard: Upgrade to Pro, pay on the Stripe stand-in, back to the dashboard."""
    await tab.goto(f"{server.url}/portal")
    await tab_to(tab, "form#upgrade button")
    await press_and_follow(tab)
    assert tab.url.startswith(f"{server.stripe.url}/checkout/"), tab.url
    await tab_to(tab, "button")
    await press_and_follow(tab)
    assert server.stripe.outcomes and all(
        o[1:] == (200, "applied") for o in server.stripe.outcomes
    ), server.stripe.outcomes
    await tab.goto(f"{server.url}/portal")
