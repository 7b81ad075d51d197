"""The founder's billing check (admin key): `GET /v1/admin/billing/reconcile`."""

from app.core.errors import error_responses
from app.core.routing import Router
from app.deps import AdminDep, ServicesDep, SessionDep, read_only
from app.metering import reconcile as service
from app.metering.reconcile import Reconciliation

router = Router(
    prefix="/v1/admin/billing", tags=["admin"], responses=error_responses(401, 403, 429, 503)
)


@router.get("/reconcile", response_model=Reconciliation)
@read_only
async def reconcile(_: AdminDep, session: SessionDep, services: ServicesDep) -> Reconciliation:
    """Per paid period: counted, rolled up, settled, reported, accepted by Stripe, and why not."""
    return await service.reconcile(session, services.redis, services.keys)
