"""The Stripe client: built once per app from the settings, never at import time.

Every call goes through httpx (`stripe.HTTPXClient`, sync methods allowed for the CLI), with a
timeout and Stripe's own idempotent retries. `STRIPE_API_BASE` points every API and meter-event
call at a local Stripe-compatible server (tests).
"""

from __future__ import annotations

from typing import Any

import stripe

from app.core.config import Settings

STRIPE_TIMEOUT_S = 10.0


def build_stripe(settings: Settings) -> stripe.StripeClient | None:
    """A client for the configured key, or None when billing is not configured."""
    if settings.STRIPE_SECRET_KEY is None:
        return None
    base = settings.STRIPE_API_BASE
    addresses: Any = (
        {"api": base, "meter_events": base, "files": base, "connect": base} if base else None
    )
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY.get_secret_value(),
        base_addresses=addresses,
        http_client=stripe.HTTPXClient(timeout=STRIPE_TIMEOUT_S, allow_sync_methods=True),
        max_network_retries=2,
    )
