"""Billing payloads."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from app.core.schemas import InputModel, Schema


class CheckoutRequest(InputModel):
    plan: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")


class BillingUrl(Schema):
    url: str = Field(description="Open it in a browser (Stripe-hosted page).")


class ReturnPage(Schema):
    status: Literal["success", "cancel", "portal"]
    message: str


class IncidentPublic(Schema):
    """Something billing fixed on its own, for the founder to know (and to tell the customer)."""

    id: str
    kind: str = Field(description="`duplicate_subscription`: a second paid subscription.")
    account_id: str
    stripe_customer_id: str | None
    subscription_id: str = Field(description="The subscription acted on (cancelled).")
    kept_subscription_id: str | None = Field(description="The one the account follows.")
    event_id: str | None = Field(description="The Stripe event that revealed it.")
    cancel_status: str = Field(description="`cancelled`, `already_ended` or `failed: <code>`.")
    refund_status: str = Field(
        description="`refunded`, `already_refunded`, `nothing_paid`, or `failed: <why>`: "
        "refund by hand in Stripe's dashboard."
    )
    refunded_amount: int = Field(description="Minor units (cents).")
    currency: str | None
    refund_ids: list[str]
    created_at: datetime


class IncidentList(Schema):
    data: list[IncidentPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")
