"""The scheduled jobs (Vercel Cron, platform): `GET /v1/internal/cron/{job}`.

Every job is safe to run twice, concurrently, or again after a crash. Vercel Cron sends
`Authorization: Bearer $CRON_SECRET`; anything else is a 401.
"""

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header
from pydantic import BaseModel

from app.billing.errors import BillingNotConfigured
from app.core.errors import NotFound, Unauthorized
from app.core.routing import Router
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
    return await usage.rollup(services.db, services.redis, services.keys, services.settings)


async def _rollup_tick(services: Services) -> BaseModel:
    """Fired every minute: the roll-up, when USAGE_ROLLUP_INTERVAL_SECONDS have passed."""
    return await usage.rollup_if_due(services.db, services.redis, services.keys, services.settings)


async def _flush(services: Services) -> BaseModel:
    """Roll up (and settle) first, so the flush bills every call settled before it started."""
    if services.stripe is None:
        raise BillingNotConfigured()
    from app.metering import service as metering

    await usage.rollup_before_billing(services.db, services.redis, services.keys, services.settings)
    return await metering.flush(services.db, services.stripe)


async def _reconcile(services: Services) -> BaseModel:
    """Roll up and flush first (when billing is configured), then check and alert."""
    from app.metering import reconcile

    if services.stripe is not None:
        await _flush(services)
    return await reconcile.check_and_alert(
        services.db, services.redis, services.keys, services.settings
    )


async def _deliver(services: Services) -> BaseModel:
    from app.webhooks import delivery as webhook_delivery

    return await webhook_delivery.deliver(services.db, services.settings)


async def _notify(services: Services) -> BaseModel:
    from app.notices import service as notices

    return await notices.notify(services.db, services.settings)


JOBS: dict[str, Callable[[Services], Awaitable[BaseModel]]] = {
    "rollup-usage": _rollup,  # Redis counters → usage_rollups, now
    "rollup-usage-tick": _rollup_tick,  # every minute: the roll-up when its interval has passed
    "flush-usage": _flush,  # roll-up, then Pro overage → the Stripe meter (every 10 minutes)
    "reconcile-billing": _reconcile,  # hourly: counted = settled = reported = accepted?
    "notify-usage": _notify,  # 80/100/120 % quota notices (hourly)
    "deliver-webhooks": _deliver,  # outbound webhook deliveries and retries (every minute)
}

router = Router(
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
