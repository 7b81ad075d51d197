"""Stripe's Checkout, cancel and refund endpoints, played through respx with Stripe's own shapes
and Stripe's idempotency: a request repeated with the same `Idempotency-Key` gets the first
answer again and has no second effect (what the billing code relies on when a webhook is
retried). Used with `FakeSubscriptions` (tests/billing/conftest.py) on the same mock."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qsl

import httpx
import respx

from tests.billing.conftest import STRIPE_BASE, FakeSubscriptions
from tests.support import stripe_objects as so
from tests.support.fake_stripe import decode_form


def _form(request: httpx.Request) -> dict[str, Any]:
    return decode_form(parse_qsl(request.content.decode(), keep_blank_values=True))


def _stripe_error(status: int, code: str | None = None) -> httpx.Response:
    kind = "api_error" if status >= 500 else "invalid_request_error"
    body: dict[str, Any] = {"type": kind, "message": "fake failure"}
    if code:
        body["code"] = code
    return httpx.Response(status, json={"error": body}, headers={"Stripe-Should-Retry": "false"})


class FakeCheckout:
    """`POST /v1/customers` and `POST /v1/checkout/sessions`: every session is new (its own id
    and URL) and lives until the `expires_at` it was asked for; `delay` widens races."""

    def __init__(self, mock: respx.MockRouter, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.sessions: list[dict[str, Any]] = []
        self.forms: list[dict[str, Any]] = []
        self.customers: dict[str, dict[str, Any]] = {}  # by idempotency key: one per account
        self.customer_route = mock.post(f"{STRIPE_BASE}/v1/customers").mock(
            side_effect=self._customer
        )
        self.route = mock.post(f"{STRIPE_BASE}/v1/checkout/sessions").mock(side_effect=self._create)

    def _customer(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key", "")
        found = self.customers.setdefault(key, so.customer(email="dev@example.com"))
        return httpx.Response(200, json=found)

    async def _create(self, request: httpx.Request) -> httpx.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        form = _form(request)
        self.forms.append(form)
        created = so.checkout_session(
            mode="subscription",
            customer=form.get("customer"),
            client_reference_id=form.get("client_reference_id"),
            metadata=form.get("metadata", {}),
            expires_at=int(form.get("expires_at", time.time() + 86_400)),
        )
        created["url"] = f"https://checkout.stripe.test/c/pay/{created['id']}"
        self.sessions.append(created)
        return httpx.Response(200, json=created)


class FakeRefunds:
    """Cancelling subscriptions, an invoice's payments and refunds, idempotent as Stripe is.

    `effects` counts what really happened (a replayed key adds nothing); `calls` counts requests.
    `fail_refunds` makes that many refund requests answer 500 before one succeeds."""

    def __init__(self, mock: respx.MockRouter, subscriptions: FakeSubscriptions) -> None:
        self.subscriptions = subscriptions
        self.payments: dict[str, list[dict[str, Any]]] = {}  # invoice id -> its payments
        self.cancelled: list[str] = []
        self.refunded: list[dict[str, Any]] = []
        self.keys: dict[str, list[str]] = {"cancel": [], "refund": []}
        self.fail_refunds = 0
        self._replies: dict[str, httpx.Response] = {}
        sid = r"/v1/subscriptions/(?P<sid>[^/?]+)"
        mock.delete(url__regex=STRIPE_BASE + sid).mock(side_effect=self._cancel)
        mock.get(url__regex=STRIPE_BASE + r"/v1/invoice_payments").mock(side_effect=self._list)
        mock.post(f"{STRIPE_BASE}/v1/refunds").mock(side_effect=self._refund)

    def paid_invoice(self, sub: dict[str, Any], *, amount: int = 4900) -> str:
        """Give `sub` a latest invoice paid by a PaymentIntent of `amount`; returns the PI id."""
        invoice = so.invoice(customer=sub["customer"], status="paid", amount_paid=amount)
        intent = f"pi_{invoice['id'][3:]}"
        payment = so.invoice_payment(
            invoice=invoice["id"],
            amount_paid=amount,
            amount_requested=amount,
            currency="usd",
            status="paid",
            payment={"type": "payment_intent", "payment_intent": intent},
        )
        self.payments[invoice["id"]] = [payment]
        sub["latest_invoice"] = invoice["id"]
        return intent

    def _replay(self, kind: str, request: httpx.Request) -> tuple[str, httpx.Response | None]:
        key = request.headers.get("idempotency-key", "")
        self.keys[kind].append(key)
        return key, self._replies.get(f"{kind}:{key}") if key else None

    def _cancel(self, request: httpx.Request, sid: str) -> httpx.Response:
        key, replay = self._replay("cancel", request)
        if replay is not None:
            return replay
        sub = self.subscriptions.current.get(sid)
        if sub is None:
            return _stripe_error(404, "resource_missing")
        sub["status"] = "canceled"
        query = decode_form(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        comment = query.get("cancellation_details", {}).get("comment")  # DELETE: in the query
        sub["cancellation_details"] = {"comment": comment, "feedback": None, "reason": None}
        self.cancelled.append(sid)
        self._replies[f"cancel:{key}"] = reply = httpx.Response(200, json=sub)
        return reply

    def _list(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        found = [
            p
            for p in self.payments.get(params.get("invoice", ""), [])
            if p["status"] == params.get("status", p["status"])
        ]
        return httpx.Response(200, json=so.listing(found, "/v1/invoice_payments"))

    def _refund(self, request: httpx.Request) -> httpx.Response:
        if self.fail_refunds > 0:
            self.fail_refunds -= 1
            self.keys["refund"].append(request.headers.get("idempotency-key", ""))
            return _stripe_error(500)
        key, replay = self._replay("refund", request)
        if replay is not None:
            return replay
        form = _form(request)
        intent = form.get("payment_intent")
        paid = [p for ps in self.payments.values() for p in ps]
        amount = next(
            p["amount_paid"] for p in paid if p["payment"].get("payment_intent") == intent
        )
        refund = so.refund(
            amount=amount,
            charge=None,
            payment_intent=intent,
            reason=form.get("reason"),
            metadata=form.get("metadata", {}),
        )
        self.refunded.append(refund)
        self._replies[f"refund:{key}"] = reply = httpx.Response(200, json=refund)
        return reply
