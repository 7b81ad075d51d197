"""Paid periods follow the founder: the metering flush bills a period by its `plan_code`.

The webhook records each period with the account's effective plan (a founder-assigned contract
plan stands over Stripe's `pro`). When the founder assigns a plan between two webhooks, the
period already recorded must follow at once, or the flush would bill Pro overage for the rest of
it: `PUT /v1/admin/accounts/{id}/plan` calls `follow_founder_plan` in the same transaction.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing import repository as repo
from app.models import utcnow


async def follow_founder_plan(session: AsyncSession, account_id: str, plan_code: str) -> None:
    """Put the account's current paid period(s) on the plan the founder just assigned."""
    await repo.set_open_periods_plan(session, account_id, plan_code, now=utcnow())
