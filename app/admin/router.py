"""The founder's endpoints: catalog upsert, key and account suspension, plans, account plans,
abuse watch."""

from typing import Annotated

from fastapi import Path, Query
from fastapi.exceptions import RequestValidationError

from app.accounts import plans
from app.accounts import service as accounts
from app.accounts.schemas import (
    AccountPlanUpdate,
    AccountStatusPublic,
    KeyPublic,
    PlanPublic,
    PlanUpdate,
)
from app.billing import periods as billing_periods
from app.catalog import service as catalog
from app.catalog.schemas import UpsertRequest, UpsertResponse
from app.core.errors import error_responses
from app.core.routing import Router
from app.core.schemas import ResourceId
from app.deps import AdminDep, ServicesDep, SessionDep
from app.usage import service as usage
from app.usage.schemas import TopAccounts

router = Router(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
)

PlanCode = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


@router.put("/products", response_model=UpsertResponse)
async def upsert_products(body: UpsertRequest, _: AdminDep, session: SessionDep) -> UpsertResponse:
    """Bulk upsert of up to 1,000 products (idempotent on `sku`)."""
    return await catalog.upsert(session, body.products)


@router.post("/keys/{key_id}/suspend", response_model=KeyPublic)
async def suspend_key(
    key_id: ResourceId, _: AdminDep, session: SessionDep, services: ServicesDep
) -> KeyPublic:
    """Suspend a key: 403 `key_suspended` from its next request, on every instance; until it is
    lifted its account can neither mint keys nor revoke or rotate this one away."""
    key = await accounts.set_key_suspended(
        session, services.versions, key_id=key_id, suspended=True
    )
    return accounts.key_public(key)


@router.post("/keys/{key_id}/unsuspend", response_model=KeyPublic)
async def unsuspend_key(
    key_id: ResourceId, _: AdminDep, session: SessionDep, services: ServicesDep
) -> KeyPublic:
    """Lift a suspension, effective on the key's next request."""
    key = await accounts.set_key_suspended(
        session, services.versions, key_id=key_id, suspended=False
    )
    return accounts.key_public(key)


@router.post("/accounts/{account_id}/suspend", response_model=AccountStatusPublic)
async def suspend_account(
    account_id: ResourceId, _: AdminDep, session: SessionDep, services: ServicesDep
) -> AccountStatusPublic:
    """Suspend an account: every key answers 403 `key_suspended` from its next request, on
    every instance, and the account can create no key until it is lifted."""
    account = await accounts.set_account_suspended(
        session, services.versions, account_id=account_id, suspended=True
    )
    return AccountStatusPublic(account_id=account.id, status=account.status)


@router.post("/accounts/{account_id}/unsuspend", response_model=AccountStatusPublic)
async def unsuspend_account(
    account_id: ResourceId, _: AdminDep, session: SessionDep, services: ServicesDep
) -> AccountStatusPublic:
    """Lift an account's suspension: its keys work again from their next request."""
    account = await accounts.set_account_suspended(
        session, services.versions, account_id=account_id, suspended=False
    )
    return AccountStatusPublic(account_id=account.id, status=account.status)


def _same_code(code: str, body: PlanUpdate) -> None:
    """A `code` in the body (the `PlanPublic` shape) must name the plan in the path: else 422."""
    if body.code is not None and body.code != code:
        msg = f"must equal the plan code in the path ({code!r})"
        raise RequestValidationError([{"loc": ("body", "code"), "msg": msg, "type": "value_error"}])


@router.put("/plans/{code}", response_model=PlanPublic)
async def put_plan(
    code: PlanCode, body: PlanUpdate, _: AdminDep, session: SessionDep, services: ServicesDep
) -> PlanPublic:
    """Create or change a plan; every account on it sees the change on its next request."""
    _same_code(code, body)
    plan = await plans.upsert_plan(session, services.versions, code=code, update=body)
    return plans.plan_public(plan)


@router.put("/accounts/{account_id}/plan")
async def put_account_plan(
    account_id: ResourceId,
    body: AccountPlanUpdate,
    _: AdminDep,
    session: SessionDep,
    services: ServicesDep,
) -> dict[str, str]:
    """Put an account on a plan (custom contracts), effective on its next request."""
    account = await accounts.set_account_plan(
        session, services.versions, account_id=account_id, plan_code=body.plan
    )
    # the paid period already recorded follows at once: the flush bills a period by its plan
    await billing_periods.follow_founder_plan(session, account.id, account.plan_code)
    return {"account_id": account.id, "plan": account.plan_code}


@router.get("/usage/top", response_model=TopAccounts)
async def top_usage(
    _: AdminDep,
    session: SessionDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> TopAccounts:
    """The heaviest accounts this calendar month, live from the gate's counters (abuse watch)."""
    return await usage.live_top(session, services.redis, services.keys, limit=limit)
