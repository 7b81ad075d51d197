"""The names AgentMall gives its Stripe objects, and the webhook events it handles: one place,
used by the bootstrap (which creates them), the webhook handler and the metering flush."""

from __future__ import annotations

PRODUCT_ID = "agentmall_pro"  # a fixed product id: found again on every bootstrap run
MONTHLY_LOOKUP_KEY = "agentmall_pro_monthly"
OVERAGE_LOOKUP_KEY = "agentmall_pro_overage"
METER_EVENT_NAME = "agentmall_api_call"
WEBHOOK_PATH = "/v1/stripe/webhook"
WEBHOOK_EVENTS = (
    "checkout.session.completed",
    "checkout.session.expired",  # frees the account's stored session (service.py reuses it)
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
)
