"""Billing payloads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.core.schemas import InputModel


class CheckoutRequest(InputModel):
    plan: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")


class BillingUrl(BaseModel):
    url: str = Field(description="Open it in a browser (Stripe-hosted page).")


class ReturnPage(BaseModel):
    status: Literal["success", "cancel", "portal"]
    message: str
