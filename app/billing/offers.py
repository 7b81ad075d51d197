"""What Checkout sells, without the Stripe SDK (the portal reads it to offer an upgrade)."""

from __future__ import annotations

PURCHASABLE = frozenset({"pro"})
# Plans Checkout may move an account from: a plan the founder assigned (a contract) stands, and
# Stripe events never change it, so paying for Pro would buy nothing.
SOLD_PLANS = frozenset({"free", "pro"})
