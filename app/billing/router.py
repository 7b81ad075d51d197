"""Billing endpoints: Checkout, the Customer Portal, the one-click upgrade link (control plane),
and the founder's view of billing incidents (`admin_router`)."""

from types import ModuleType
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import RedirectResponse

from app.billing import incidents
from app.billing.limits import BillingLimiter
from app.billing.schemas import BillingUrl, CheckoutRequest, IncidentList, ReturnPage
from app.core.errors import error_responses
from app.core.routing import Router
from app.deps import AdminDep, PrincipalDep, ServicesDep, SessionDep, read_only


def _service() -> ModuleType:
    """The billing service, imported on first use: it brings the Stripe SDK, which the API
    function does not load at start-up (cold starts; bench/coldstart.py)."""
    from app.billing import service

    return service


def _limiter(request: Request, services: ServicesDep) -> BillingLimiter:
    """The billing limits (per account, per address) for this request's client address."""
    return BillingLimiter(services.settings, services.redis, services.client_ip.of(request))


LimiterDep = Annotated[BillingLimiter, Depends(_limiter)]

router = Router(
    prefix="/v1/billing",
    tags=["billing"],
    responses=error_responses(400, 401, 403, 409, 422, 429, 502, 503),
)

RETURN_MESSAGES = {
    "success": "Thank you! Your plan changes within seconds; your API keys stay the same.",
    "cancel": "Checkout was cancelled; nothing changed.",
    "portal": "Your subscription settings are saved.",
}


@router.post("/checkout", response_model=BillingUrl)
async def checkout(
    body: CheckoutRequest,
    principal: PrincipalDep,
    session: SessionDep,
    services: ServicesDep,
    limiter: LimiterDep,
) -> BillingUrl:
    """A Stripe Checkout Session to subscribe to a paid plan (an open one is reused)."""
    url = await _service().checkout(
        session,
        services.stripe,
        services.settings,
        limiter,
        account=principal.account,
        plan=body.plan,
    )
    return BillingUrl(url=url)


@router.post("/portal", response_model=BillingUrl)
async def portal(
    principal: PrincipalDep, session: SessionDep, services: ServicesDep, limiter: LimiterDep
) -> BillingUrl:
    """A Stripe Customer Portal session to manage the subscription; 409 if it never existed."""
    url = await _service().portal(
        session, services.stripe, services.settings, limiter, principal.account
    )
    return BillingUrl(url=url)


@router.get("/upgrade", status_code=303, response_class=RedirectResponse)
async def upgrade(
    token: Annotated[str, Query(min_length=1, max_length=300)],
    session: SessionDep,
    services: ServicesDep,
    limiter: LimiterDep,
) -> RedirectResponse:
    """The signed link in quota and plan errors: 303 to the account's Checkout Session (no key)."""
    url = await _service().follow_upgrade_link(
        session, services.stripe, services.settings, limiter, token
    )
    return RedirectResponse(url, status_code=303)


@router.get("/manage", status_code=303, response_class=RedirectResponse)
async def manage(
    token: Annotated[str, Query(min_length=1, max_length=300)],
    session: SessionDep,
    services: ServicesDep,
    limiter: LimiterDep,
) -> RedirectResponse:
    """The signed link in 402 `payment_required` bodies: 303 to the Customer Portal (no key)."""
    url = await _service().follow_manage_link(
        session, services.stripe, services.settings, limiter, token
    )
    return RedirectResponse(url, status_code=303)


@router.get("/return", response_model=ReturnPage)
async def stripe_return(status: Literal["success", "cancel", "portal"]) -> ReturnPage:
    """Where Stripe's pages send the person back."""
    return ReturnPage(status=status, message=RETURN_MESSAGES[status])


admin_router = Router(
    prefix="/v1/admin/billing",
    tags=["admin"],
    responses=error_responses(400, 401, 403, 422, 429, 503),
)

AccountFilter = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
Cursor = Annotated[str | None, Query(min_length=1, max_length=300)]  # a bad one: 400


@admin_router.get("/incidents", response_model=IncidentList)
@read_only
async def list_incidents(
    _: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
    account_id: AccountFilter = None,
) -> IncidentList:
    """Billing incidents, newest first: e.g. a second paid subscription, cancelled and refunded."""
    return await incidents.list_incidents(
        session, limit=limit, cursor=cursor, account_id=account_id
    )
