"""Billing endpoints: Checkout, the Customer Portal, the one-click upgrade link (control plane)."""

from __future__ import annotations

from types import ModuleType
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse

from app.billing.schemas import BillingUrl, CheckoutRequest, ReturnPage
from app.core.errors import error_responses
from app.deps import PrincipalDep, ServicesDep, SessionDep


def _service() -> ModuleType:
    """The billing service, imported on first use: it brings the Stripe SDK, which the API
    function does not load at start-up (cold starts; bench/coldstart.py)."""
    from app.billing import service

    return service


router = APIRouter(
    prefix="/v1/billing",
    tags=["billing"],
    responses=error_responses(400, 401, 403, 409, 422, 503),
)

RETURN_MESSAGES = {
    "success": "Thank you! Your plan changes within seconds; your API keys stay the same.",
    "cancel": "Checkout was cancelled; nothing changed.",
    "portal": "Your subscription settings are saved.",
}


@router.post("/checkout", response_model=BillingUrl)
async def checkout(
    body: CheckoutRequest, principal: PrincipalDep, session: SessionDep, services: ServicesDep
) -> BillingUrl:
    """A Stripe Checkout Session to subscribe to a paid plan."""
    url = await _service().checkout(
        session, services.stripe, services.settings, account=principal.account, plan=body.plan
    )
    return BillingUrl(url=url)


@router.post("/portal", response_model=BillingUrl)
async def portal(principal: PrincipalDep, session: SessionDep, services: ServicesDep) -> BillingUrl:
    """A Stripe Customer Portal session to manage the subscription; 409 if it never existed."""
    url = await _service().portal(session, services.stripe, services.settings, principal.account)
    return BillingUrl(url=url)


@router.get("/upgrade", status_code=303, response_class=RedirectResponse)
async def upgrade(
    token: Annotated[str, Query(min_length=1, max_length=300)],
    session: SessionDep,
    services: ServicesDep,
) -> RedirectResponse:
    """The signed link in quota and plan errors: 303 to a fresh Checkout Session (no key)."""
    url = await _service().follow_upgrade_link(session, services.stripe, services.settings, token)
    return RedirectResponse(url, status_code=303)


@router.get("/manage", status_code=303, response_class=RedirectResponse)
async def manage(
    token: Annotated[str, Query(min_length=1, max_length=300)],
    session: SessionDep,
    services: ServicesDep,
) -> RedirectResponse:
    """The signed link in 402 `payment_required` bodies: 303 to the Customer Portal (no key)."""
    url = await _service().follow_manage_link(session, services.stripe, services.settings, token)
    return RedirectResponse(url, status_code=303)


@router.get("/return", response_model=ReturnPage)
async def stripe_return(status: Literal["success", "cancel", "portal"]) -> ReturnPage:
    """Where Stripe's pages send the person back."""
    return ReturnPage(status=status, message=RETURN_MESSAGES[status])
