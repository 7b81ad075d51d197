"""Usage (control plane)."""

from app.core.errors import error_responses
from app.core.routing import Router
from app.deps import PrincipalDep, ServicesDep, SessionDep
from app.usage import service
from app.usage.schemas import UsagePublic

router = Router(prefix="/v1", tags=["usage"], responses=error_responses(401, 403, 429, 503))


@router.get("/usage", response_model=UsagePublic)
async def usage(principal: PrincipalDep, session: SessionDep, services: ServicesDep) -> UsagePublic:
    """This period's usage: used, quota, remaining, per endpoint and per day."""
    return await service.usage_view(
        session, services.redis, services.keys, account=principal.account, plan=principal.plan
    )
