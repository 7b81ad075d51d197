"""Usage (control plane) and the scheduled jobs (platform)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header

from app.core.errors import NotFound, Unauthorized, error_responses
from app.deps import PrincipalDep, ServicesDep, SessionDep, SettingsDep
from app.usage import service
from app.usage.schemas import RollupResult, UsagePublic

router = APIRouter(prefix="/v1", tags=["usage"], responses=error_responses(401, 403))


@router.get("/usage", response_model=UsagePublic)
async def usage(principal: PrincipalDep, session: SessionDep, services: ServicesDep) -> UsagePublic:
    """This period's usage: used, quota, remaining, per endpoint and per day."""
    return await service.usage_view(
        session, services.redis, services.keys, account=principal.account, plan=principal.plan
    )


class CronUnauthorized(Unauthorized):
    code = "unauthorized"
    default_message = "Cron endpoints need Authorization: Bearer $CRON_SECRET."


class JobNotFound(NotFound):
    code = "job_not_found"
    default_message = "No scheduled job with this name."


def require_cron(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Vercel Cron sends `Authorization: Bearer $CRON_SECRET`; anything else is a 401."""
    secret = settings.CRON_SECRET
    if secret is None or not authorization:
        raise CronUnauthorized()
    expected = f"Bearer {secret.get_secret_value()}".encode()
    if not hmac.compare_digest(authorization.encode(), expected):
        raise CronUnauthorized()


cron = APIRouter(
    prefix="/v1/internal/cron",
    tags=["platform"],
    include_in_schema=False,
    dependencies=[Depends(require_cron)],
)


@cron.get("/{job}", response_model=RollupResult)
async def run_job(job: str, services: ServicesDep) -> RollupResult:
    """Run one scheduled job (Vercel Cron)."""
    if job == "rollup-usage":
        return await service.rollup(services.db, services.redis, services.keys)
    raise JobNotFound()
