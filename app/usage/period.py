"""Billing periods: the calendar month (UTC) for free accounts, the Stripe period for paid ones.

The renewal gap: a paid period ends, and the webhook that reports the next one arrives seconds
later (hours while Stripe retries). Calls in between belong to the subscription's next period, so
they are counted there from the start: the next period is computed from the subscription's own
billing cycle (`next_paid_period`), and the renewal webhook only confirms it.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from pathlib import Path

# The same calendar in Lua, for the scripts that choose periods by Redis's clock.
CALENDAR_LUA = (Path(__file__).with_name("calendar.lua")).read_text()


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _add_months(moment: datetime, months: int, anchor_day: int) -> datetime:
    """`moment` moved by whole months, on the anchor day (clamped to the month's last day)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(anchor_day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def next_paid_period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The period after [start, end) in the same billing cycle, as Stripe would compute it.

    * Whole months apart (monthly, yearly, ...): the same number of months again, on the cycle's
      anchor day clamped to short months (Jan 31 → Feb 28 → Mar 31). Of two consecutive bounds
      one always falls on the anchor day itself (two consecutive months never both have fewer
      days than it), so the anchor is the larger of the two days.
    * Whole days or weeks (daily and weekly cycles): the same length again.
    * Anything else is a prorated first period ending on the billing anchor: a month from its
      end, on its end's day.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    months = (end.year - start.year) * 12 + end.month - start.month
    anchor = max(start.day, end.day)
    if months > 0 and _add_months(start, months, anchor) == end:
        return end, _add_months(end, months, anchor)
    length = end - start
    if (
        length.seconds == 0
        and length.microseconds == 0
        and (length.days == 1 or length.days % 7 == 0)
    ):
        return end, end + length
    return end, _add_months(end, 1, end.day)


def current_period(
    paid_start: datetime | None, paid_end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The period `now` falls in: the subscription's while it is current, its next period in the
    renewal gap (until the webhook confirms it), else the calendar month."""
    if paid_start and paid_end:
        if paid_start <= now < paid_end:
            return paid_start, paid_end
        upcoming = next_paid_period(paid_start, paid_end)
        if upcoming[0] <= now < upcoming[1]:
            return upcoming
    return month_bounds(now)
