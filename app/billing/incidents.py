"""The founder's view of billing incidents (what billing fixed on its own), newest first."""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing import repository as repo
from app.billing.schemas import IncidentList, IncidentPublic
from app.core.errors import InvalidCursor

INCIDENT_ID = re.compile(r"inc_[0-9a-f]{24}")


async def list_incidents(
    session: AsyncSession, *, limit: int, cursor: str | None, account_id: str | None
) -> IncidentList:
    """One page of incidents; the cursor is the last incident's id (an unknown one is a 400)."""
    after = None
    if cursor is not None:
        after = await repo.get_incident(session, cursor) if INCIDENT_ID.fullmatch(cursor) else None
        if after is None:
            raise InvalidCursor()
    rows = await repo.list_incidents(session, limit=limit + 1, after=after, account_id=account_id)
    page = [IncidentPublic.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return IncidentList(data=page, next_cursor=page[-1].id if len(rows) > limit else None)
