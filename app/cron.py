"""The scheduled jobs (Vercel Cron, platform): `GET /v1/internal/cron/{job}`.

Every job is safe to run twice, concurrently, or again after a crash. Vercel Cron sends
`Authorization: Bearer $CRON_SECRET`; anything else is a 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel

from app.billing.errors import BillingNotConfigured
from app.core.errors import NotFound, Unauthorized
from app.deps import ServicesDep, SettingsDep
from app.services import Services
from app.usage import service as usage


class CronUnauthorized(Unauthorized):
    code = "unauthorized"
    default_message = "Cron endpoints need Authorization: Bearer $CRON_SECRET."


class JobNotFound(NotFound):
    code = "job_not_found"
    default_message = "No scheduled job with this name."


async def require_cron(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Vercel Cron sends `Authorization: Bearer $CRON_SECRET`; anything else is a 401."""
    secret = settings.CRON_SECRET
    if secret is None or not authorization:
        raise CronUnauthorized()
    expected = f"Bearer {secret.get_secret_value()}".encode()
    if not hmac.compare_digest(authorization.encode(), expected):
        raise CronUnauthorized()


# The other jobs import their module when they run: the API function starts without the Stripe
# SDK, the mailer or the delivery client (bench/coldstart.py). The roll-up's module is the gate's.


async def _rollup(services: Services) -> BaseModel:
    return await usage.rollup(services.db, services.redis, services.keys)


async def _flush(services: Services) -> BaseModel:
    if services.stripe is None:
        raise BillingNotConfigured()
    from app.metering import service as metering

    return await metering.flush(services.db, services.stripe)


async def _deliver(services: Services) -> BaseModel:
    from app.webhooks import delivery as webhook_delivery

    return await webhook_delivery.deliver(services.db, services.settings)


async def _notify(services: Services) -> BaseModel:
    from app.notices import service as notices

    return await notices.notify(services.db, services.settings)


JOBS: dict[str, Callable[[Services], Awaitable[BaseModel]]] = {
    "rollup-usage": _rollup,  # Redis counters → usage_rollups (every 10 minutes)
    "flush-usage": _flush,  # Pro overage → the Stripe meter (hourly)
    "notify-usage": _notify,  # 80/100/120 % quota notices (hourly)
    "deliver-webhooks": _deliver,  # outbound webhook deliveries and retries (every minute)
}

router = APIRouter(
    prefix="/v1/internal/cron",
    tags=["platform"],
    include_in_schema=False,
    dependencies=[Depends(require_cron)],
)


@router.get("/{job}", response_model=None)
async def run_job(job: str, services: ServicesDep) -> dict[str, object]:
    """Run one scheduled job; answers what it did."""
    run = JOBS.get(job)
    if run is None:
        raise JobNotFound()
    return (await run(services)).model_dump(mode="json")
