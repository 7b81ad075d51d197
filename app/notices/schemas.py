"""What the notice job works on and what it reports."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app.core.schemas import Schema


class NoticeResult(Schema):
    """The `notify-usage` cron's answer."""

    job: Literal["notify-usage"] = "notify-usage"
    checked: int = 0  # accounts with a notice due (new threshold crossed, or an unsent notice)
    sent: int = 0  # emails accepted by the SMTP provider
    logged: int = 0  # notices written to the log (no email provider configured)
    failed: int = 0  # emails the provider did not accept; retried on the next run
    deferred: int = 0  # due, not attempted this run (provider failing, or time budget spent)


@dataclass(frozen=True, slots=True)
class DueAccount:
    """An account whose usage this period has crossed a notice threshold."""

    account_id: str
    email: str
    plan_code: str
    plan_name: str
    hard_limit: bool
    included_calls: int
    overage_cents_per_1000: int | None
    currency: str
    period_start: datetime
    period_end: datetime
    used: int


@dataclass(frozen=True, slots=True)
class Email:
    """One rendered message."""

    subject: str
    text: str
    html: str
