"""The Stripe webhook function (`api/stripe_webhook.py`): a small app of its own.

It imports no catalog, gate or usage code, so its cold start stays small. It needs PostgreSQL
(the unit of work that records each event with its effect), Redis (to publish the account's new
policy version, so every API instance applies the plan change on its next request) and Stripe (to
re-fetch the subscription). Without `STRIPE_WEBHOOK_SECRET` it accepts nothing: an empty secret
would make every signature forgeable.

Locally, the API app serves the same route too (`add_webhook_route`), so `stripe listen
--forward-to localhost:8000/v1/stripe/webhook` works against `scripts/dev.sh`; on Vercel the
rewrite sends that path to this function, never to the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Header, Request

from app.accounts.versions import PolicyVersions
from app.billing.errors import BillingNotConfigured
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.errors import AppError, install_error_handlers
from app.redis.adapters import build_redis
from app.redis.keys import RedisKeys

if TYPE_CHECKING:
    import stripe

MAX_EVENT_BYTES = 1024 * 1024  # Stripe events are KiBs (an invoice with many lines: 100s of KiB)


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    default_message = "A Stripe event is never this large."


async def _read_capped(request: Request) -> bytes:
    """The raw body (signatures cover these exact bytes), refused past MAX_EVENT_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_EVENT_BYTES:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_EVENT_BYTES:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def add_webhook_route(
    app: FastAPI,
    settings: Settings,
    db: Database,
    versions: PolicyVersions,
    client: Callable[[], stripe.StripeClient | None],
) -> None:
    """`POST /v1/stripe/webhook` on `app` (its own function on Vercel; the API app locally).
    `client` builds the Stripe client on first use: neither app imports the SDK at start-up."""

    @app.post("/v1/stripe/webhook", include_in_schema=False)
    async def stripe_webhook(
        request: Request, stripe_signature: Annotated[str | None, Header()] = None
    ) -> dict[str, str]:
        """Verify, then apply the event exactly once (a redelivery is a 200 no-op)."""
        secret = settings.STRIPE_WEBHOOK_SECRET
        stripe_client = client() if secret is not None else None
        if secret is None or stripe_client is None:
            raise BillingNotConfigured("Stripe webhooks are not configured on this deployment.")
        payload = await _read_capped(request)
        from app.billing import webhooks

        event = webhooks.verify(payload, stripe_signature, secret.get_secret_value())
        async with db.unit() as session:
            outcome = await webhooks.handle(session, stripe_client, versions, event)
        return {"received": event["id"], "outcome": outcome}


def create_webhook_app(settings: Settings | None = None) -> FastAPI:
    """The webhook function's app: `POST /v1/stripe/webhook` and nothing else."""
    settings = settings or get_settings()
    db = Database(settings)
    redis = build_redis(settings)
    versions = PolicyVersions(redis, RedisKeys(settings.REDIS_KEY_PREFIX))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.close()
        await db.dispose()

    app = FastAPI(title="AgentMall Stripe webhooks", lifespan=lifespan, openapi_url=None)
    app.state.db, app.state.redis = db, redis
    install_error_handlers(app)

    @cache
    def client() -> stripe.StripeClient | None:
        from app.billing.stripe_client import build_stripe

        return build_stripe(settings)

    add_webhook_route(app, settings, db, versions, client)
    return app
