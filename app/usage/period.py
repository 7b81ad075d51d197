"""Billing periods: the calendar month (UTC) for free accounts, the Stripe period for paid ones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

# The same calendar in Lua, for the scripts that choose periods by Redis's clock.
CALENDAR_LUA = (Path(__file__).with_name("calendar.lua")).read_text()


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def current_period(
    paid_start: datetime | None, paid_end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The period `now` falls in: the subscription's while it is current, else the month."""
    if paid_start and paid_end and paid_start <= now < paid_end:
        return paid_start, paid_end
    return month_bounds(now)
