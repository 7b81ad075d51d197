"""Sign-up, plans (public) and the account's own control plane (keyed, never metered)."""

from fastapi import Request, status

from app.accounts import plans as plans_service
from app.accounts import service
from app.accounts.schemas import (
    AccountPublic,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyPublic,
    KeyRotate,
    KeyRotated,
    PlanList,
    SignupRequest,
    SignupResponse,
)
from app.core.errors import error_responses
from app.core.routing import Router
from app.core.schemas import ResourceId
from app.deps import PrincipalDep, ServicesDep, SessionDep
from app.usage import service as usage

public = Router(prefix="/v1", tags=["public"], responses=error_responses(409, 413, 422, 429, 503))
router = Router(
    prefix="/v1",
    tags=["account"],
    responses=error_responses(401, 403, 404, 409, 413, 422, 429, 503),
)


@public.post("/signup", status_code=status.HTTP_201_CREATED, response_model=SignupResponse)
async def signup(
    request: Request, body: SignupRequest, session: SessionDep, services: ServicesDep
) -> SignupResponse:
    """Create a free account; the API key in the answer is shown only this once."""
    await services.public_limiter.check(services.public_limiter.signup, request)
    account, api_key = await service.signup(session, email=body.email)
    return SignupResponse(account_id=account.id, api_key=api_key, plan=account.plan_code)


@public.get("/plans", response_model=PlanList)
async def plans(request: Request, session: SessionDep, services: ServicesDep) -> PlanList:
    """The plans on offer, from the plans table."""
    await services.public_limiter.check(services.public_limiter.read, request)
    return PlanList(
        data=[plans_service.plan_public(p) for p in await plans_service.list_plans(session)]
    )


@router.get("/account", response_model=AccountPublic)
async def account(principal: PrincipalDep, session: SessionDep) -> AccountPublic:
    """Your account, plan, subscription status and current period."""
    return await service.account_view(session, principal.account)


@router.get("/keys", response_model=KeyList)
async def list_keys(principal: PrincipalDep, session: SessionDep, services: ServicesDep) -> KeyList:
    """Your live keys (prefix only; the secret is never shown again); a rotated key shows when
    it stops (`expires_at`) and leaves the list once it has. `last_used_at`: when the key last
    got a request through (null: not within 400 days, or unknown while Redis is unavailable)."""
    keys = await service.list_keys(session, principal.account)
    used = await usage.last_used(services.redis, services.keys, principal.account.id)
    return KeyList(
        data=[
            service.key_public(k).model_copy(update={"last_used_at": used.get(k.id)}) for k in keys
        ]
    )


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create_key(
    principal: PrincipalDep, session: SessionDep, body: KeyCreate | None = None
) -> KeyCreated:
    """A new key (at most 10 live); the plaintext is in this answer only."""
    name = body.name if body else None
    return await service.create_key(session, principal.account.id, name=name)


@router.post(
    "/keys/{key_id}/rotate", status_code=status.HTTP_201_CREATED, response_model=KeyRotated
)
async def rotate_key(
    key_id: ResourceId,
    principal: PrincipalDep,
    session: SessionDep,
    services: ServicesDep,
    body: KeyRotate | None = None,
) -> KeyRotated:
    """A new key replacing this one (plaintext in this answer only); the old key keeps working
    for `grace_seconds` (default 24 h, 0 to 7 days), then stops on every instance."""
    grace = (body or KeyRotate()).grace_seconds
    return await service.rotate_key(
        session,
        services.versions,
        account_id=principal.account.id,
        key_id=key_id,
        grace_seconds=grace,
    )


@router.delete("/keys/{key_id}", response_model=KeyPublic)
async def revoke_key(
    key_id: ResourceId, principal: PrincipalDep, session: SessionDep, services: ServicesDep
) -> KeyPublic:
    """Revoke one of your keys: it stops working on the next request, on every instance. The
    last working key cannot be revoked (409 `last_key`): rotate it instead."""
    key = await service.revoke_key(
        session, services.versions, account_id=principal.account.id, key_id=key_id
    )
    return service.key_public(key)
