"""Metering payloads."""

from typing import Literal

from app.core.schemas import Schema


class FlushResult(Schema):
    """What one run of the `flush-usage` cron did."""

    job: Literal["flush-usage"] = "flush-usage"
    planned: int  # meter events written to the outbox by this run
    sent: int  # outbox events Stripe acknowledged in this run (a known duplicate counts)
    rejected: int = 0  # events Stripe refused for good (4xx); kept unsent and logged
    pending: int  # outbox events still unsent after this run (sent by a later run)
    failed: str | None = None  # the Stripe error class that stopped the send phase, if any
