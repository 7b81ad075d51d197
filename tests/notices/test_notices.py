"""Quota notices, delivered to a real SMTP server (aiosmtpd on 127.0.0.1) and read back.

Usage is seeded straight into `usage_rollups` (what the roll-up cron writes); `notify` runs with a
fixed `now` so periods are predictable.
"""

from __future__ import annotations

import asyncio
import email
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from app.core.config import Settings
from app.core.db import Database
from app.core.links import verify_upgrade_token
from app.notices import service
from app.notices.service import notify, price_per_call
from tests.conftest import database_url, make_settings

NOW = datetime(2031, 5, 17, 12, 0, tzinfo=UTC)
MAY = datetime(2031, 5, 1, tzinfo=UTC)
JUNE = datetime(2031, 6, 1, tzinfo=UTC)
SENDER = "billing@agentmall.test"
PASSWORD = "S3cr3t-p4ss/word"  # URL-encoded in SMTP_URL below


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Inbox:
    """An aiosmtpd handler that keeps every message; refuses recipients starting with `bounce`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


class SmtpServer:
    """A real SMTP server on 127.0.0.1:`port`, started and stopped at will."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


def smtp_settings(port: int, userinfo: str = "") -> Settings:
    url = f"smtp://{userinfo}127.0.0.1:{port}"
    return make_settings("redis", "t:notice:", SMTP_URL=url, EMAIL_FROM=SENDER)


@pytest.fixture
def settings(smtp: SmtpServer) -> Settings:
    return smtp_settings(smtp.port)


@pytest.fixture
async def db(settings: Settings, clean_database: None) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


@pytest.fixture
async def conn(clean_database: None) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url())
    yield connection
    await connection.close()


async def make_account(
    conn: asyncpg.Connection,
    plan: str = "free",
    *,
    paid: tuple[datetime, datetime] | None = None,
    local: str = "dev",
) -> tuple[str, str]:
    """An account row (optionally in a paid Stripe period); returns (id, email)."""
    account_id = f"acct_{uuid.uuid4().hex[:24]}"
    address = f"{local}-{uuid.uuid4().hex[:8]}@example.com"
    await conn.execute(
        "INSERT INTO accounts (id, email, plan_code, role, subscription_status, policy_version, "
        "created_at, current_period_start, current_period_end) "
        "VALUES ($1, $2, $3, 'user', $4, 1, now(), $5, $6)",
        account_id,
        address,
        plan,
        "active" if paid else "none",
        paid[0] if paid else None,
        paid[1] if paid else None,
    )
    return account_id, address


async def set_usage(
    conn: asyncpg.Connection, account_id: str, used: int, period_start: datetime = MAY
) -> None:
    """The account's rolled-up usage in that period becomes `used` (two rows: two endpoints)."""
    await conn.execute(
        "DELETE FROM usage_rollups WHERE account_id = $1 AND period_start = $2",
        account_id,
        period_start,
    )
    half = used // 2
    for endpoint, count in (("products.search", half), ("products.get", used - half)):
        await conn.execute(
            "INSERT INTO usage_rollups (account_id, period_start, day, endpoint, epoch, count, "
            "seq) VALUES ($1, $2, $3, $4, 'e1', $5, 1)",
            account_id,
            period_start,
            date(period_start.year, period_start.month, period_start.day),
            endpoint,
            count,
        )


async def notices(conn: asyncpg.Connection, account_id: str) -> dict[tuple[datetime, int], bool]:
    """(period start, threshold) → sent?"""
    rows = await conn.fetch(
        "SELECT period_start, threshold, sent_at FROM usage_notices WHERE account_id = $1",
        account_id,
    )
    return {(r["period_start"], r["threshold"]): r["sent_at"] is not None for r in rows}


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


# -- thresholds ------------------------------------------------------------------------------


async def test_below_80_percent_nothing_is_sent(
    db: Database, settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    account, _ = await make_account(conn)
    await set_usage(conn, account, 799)

    result = await notify(db, settings, now=NOW)

    assert (result.checked, result.sent, result.failed) == (0, 0, 0)
    assert smtp.inbox.messages == []
    assert await notices(conn, account) == {}


async def test_80_percent_sends_one_email_with_usage_and_reset_time_once(
    db: Database, settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    account, address = await make_account(conn)
    await set_usage(conn, account, 812)

    result = await notify(db, settings, now=NOW)

    assert result.model_dump() == {
        "job": "notify-usage",
        "checked": 1,
        "sent": 1,
        "logged": 0,
        "failed": 0,
        "deferred": 0,
    }
    [message] = smtp.inbox.to(address)
    assert message["Subject"] == "AgentMall: you have used 80% of your monthly API quota"
    assert message["From"] == SENDER
    text = body(message)
    assert "used 812 API calls this period: 81% of the 1,000 included" in text
    assert "Free plan" in text
    assert "2031-06-01T00:00:00Z" in text  # the reset: the next calendar month
    assert "/v1/billing/upgrade" not in text  # the link comes with the 100 % notice
    assert await notices(conn, account) == {(MAY, 80): True}

    again = await notify(db, settings, now=NOW)
    assert (again.checked, again.sent) == (0, 0)
    assert len(smtp.inbox.messages) == 1


async def test_free_account_at_100_percent_gets_a_working_upgrade_link(
    db: Database, settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    account, address = await make_account(conn)
    await set_usage(conn, account, 850)
    await notify(db, settings, now=NOW)
    await set_usage(conn, account, 1000)

    result = await notify(db, settings, now=NOW)

    assert result.sent == 1
    first, second = smtp.inbox.to(address)
    assert "80%" in first["Subject"]
    assert second["Subject"] == "AgentMall: you have used 100% of your monthly API quota"
    text = body(second)
    assert "used 1,000 API calls this period: 100% of the 1,000" in text
    assert "429 quota_exceeded" in text
    [link] = [line for line in text.splitlines() if "/v1/billing/upgrade" in line]
    parts = urlsplit(link.strip())
    assert f"{parts.scheme}://{parts.netloc}" == settings.PUBLIC_BASE_URL
    assert verify_upgrade_token(settings, parse_qs(parts.query)["token"][0]) == (account, "pro")
    html_part = second.get_body(preferencelist=("html",))
    assert html_part is not None and f'href="{link.strip()}"' in str(html_part.get_content())
    assert await notices(conn, account) == {(MAY, 80): True, (MAY, 100): True}


async def test_jump_past_two_thresholds_sends_only_the_highest_and_never_the_lower(
    db: Database, settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    account, address = await make_account(conn)
    await set_usage(conn, account, 500)
    assert (await notify(db, settings, now=NOW)).sent == 0
    await set_usage(conn, account, 1050)

    result = await notify(db, settings, now=NOW)

    assert result.sent == 1
    [message] = smtp.inbox.to(address)
    assert "100%" in message["Subject"] and "105% of the 1,000" in body(message)
    assert await notices(conn, account) == {(MAY, 80): True, (MAY, 100): True}
    await set_usage(conn, account, 1300)  # a hard-gated plan has no 120 % notice
    assert (await notify(db, settings, now=NOW)).sent == 0
    assert len(smtp.inbox.messages) == 1


async def test_paid_account_at_120_percent_is_told_about_overage(
    db: Database, settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    period = (datetime(2031, 5, 10, tzinfo=UTC), datetime(2031, 6, 10, tzinfo=UTC))
    account, address = await make_account(conn, "pro", paid=period)
    await set_usage(conn, account, 40_000, MAY)  # another period's rows never count
    await set_usage(conn, account, 60_000, period[0])

    result = await notify(db, settings, now=NOW)

    assert result.sent == 1
    [message] = smtp.inbox.to(address)
    assert message["Subject"] == "AgentMall: you have used 120% of your monthly API quota"
    text = body(message)
    assert "60,000 API calls this period: 120% of the 50,000 included in its Pro plan" in text
    assert "billed at $0.002 per call" in text
    assert "2031-06-10T00:00:00Z" in text  # the Stripe period's end
    assert "/v1/billing/upgrade" not in text
    assert await notices(conn, account) == {(period[0], t): True for t in (80, 100, 120)}


async def test_enterprise_overage_follows_the_contract(
    db: Database, settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    account, address = await make_account(conn, "enterprise")
    await set_usage(conn, account, 1_000_000)

    assert (await notify(db, settings, now=NOW)).sent == 1
    [message] = smtp.inbox.to(address)
    assert "100%" in message["Subject"]
    assert "billed as your contract says" in body(message)


async def test_a_new_period_brings_new_notices(
    db: Database, settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    account, address = await make_account(conn)
    await set_usage(conn, account, 900, MAY)
    await notify(db, settings, now=NOW)
    await set_usage(conn, account, 820, JUNE)

    result = await notify(db, settings, now=datetime(2031, 6, 3, tzinfo=UTC))

    assert result.sent == 1
    may, june = smtp.inbox.to(address)
    assert "2031-06-01T00:00:00Z" in body(may) and "2031-07-01T00:00:00Z" in body(june)
    assert await notices(conn, account) == {(MAY, 80): True, (JUNE, 80): True}


async def test_unsettled_degraded_calls_count(
    db: Database, settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    account, address = await make_account(conn)
    await set_usage(conn, account, 700)
    await conn.execute(
        "INSERT INTO degraded_calls (request_id, account_id, period_start, day, endpoint, units, "
        "created_at) VALUES ('r1', $1, $2, $3, 'products.get', 100, now())",
        account,
        MAY,
        date(2031, 5, 17),
    )

    assert (await notify(db, settings, now=NOW)).sent == 1
    assert "used 800 API calls" in body(smtp.inbox.to(address)[0])


# -- delivery --------------------------------------------------------------------------------


async def test_smtp_down_keeps_notices_unsent_and_the_next_run_sends_them_once(
    conn: asyncpg.Connection,
) -> None:
    down = SmtpServer(free_port())  # nothing listens there yet
    settings = smtp_settings(down.port)
    db = Database(settings)
    first, first_address = await make_account(conn)
    second, second_address = await make_account(conn)
    await set_usage(conn, first, 900)
    await set_usage(conn, second, 1000)
    try:
        result = await notify(db, settings, now=NOW)
        assert (result.checked, result.sent) == (2, 0)
        assert result.failed == 1 and result.deferred == 1  # the run stops at the first failure
        assert await notices(conn, first) == {(MAY, 80): False}
        assert await notices(conn, second) == {(MAY, 80): False, (MAY, 100): False}

        down.start()
        retry = await notify(db, settings, now=NOW)
        assert (retry.checked, retry.sent, retry.failed) == (2, 2, 0)
        assert [m["Subject"] for m in down.inbox.to(first_address)] == [
            "AgentMall: you have used 80% of your monthly API quota"
        ]
        assert ["100%" in m["Subject"] for m in down.inbox.to(second_address)] == [True]
        assert await notices(conn, second) == {(MAY, 80): True, (MAY, 100): True}

        assert (await notify(db, settings, now=NOW)).sent == 0
        assert len(down.inbox.messages) == 2
    finally:
        down.stop()
        await db.dispose()


async def test_a_refused_recipient_does_not_stop_the_run(
    db: Database, settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    bounced, _ = await make_account(conn, local="bounce")
    fine, fine_address = await make_account(conn)
    for account in (bounced, fine):
        await set_usage(conn, account, 900)

    result = await notify(db, settings, now=NOW)

    assert (result.sent, result.failed, result.deferred) == (1, 1, 0)
    assert len(smtp.inbox.to(fine_address)) == 1
    assert await notices(conn, bounced) == {(MAY, 80): False}  # retried on the next run
    assert await notices(conn, fine) == {(MAY, 80): True}


async def test_no_provider_logs_a_line_per_notice_without_the_address(
    conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings("redis", "t:notice:")
    assert settings.SMTP_URL is None
    db = Database(settings)
    account, address = await make_account(conn)
    await set_usage(conn, account, 1000)
    caplog.set_level(logging.INFO, logger="agentmall.notices")
    try:
        result = await notify(db, settings, now=NOW)
        again = await notify(db, settings, now=NOW)
    finally:
        await db.dispose()

    assert (result.checked, result.logged, result.sent, result.failed) == (1, 1, 0, 0)
    assert again.logged == 0
    [line] = [r.getMessage() for r in caplog.records if "quota notice" in r.getMessage()]
    assert "no email provider" in line and f"account={account}" in line
    assert "threshold=100%" in line and "resets=2031-06-01T00:00:00Z" in line
    assert address not in caplog.text
    assert await notices(conn, account) == {(MAY, 80): True, (MAY, 100): True}


@pytest.mark.parametrize("server_up", [False, True], ids=["server-down", "no-auth-on-server"])
async def test_the_smtp_password_never_reaches_the_logs(
    server_up: bool, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    server = SmtpServer(free_port())
    encoded = PASSWORD.replace("/", "%2F")
    settings = smtp_settings(server.port, userinfo=f"mailer:{encoded}@")
    db = Database(settings)
    account, _ = await make_account(conn)
    await set_usage(conn, account, 900)
    caplog.set_level(logging.DEBUG)
    if server_up:
        server.start()  # it offers no AUTH: the login fails
    try:
        result = await notify(db, settings, now=NOW)
    finally:
        server.stop()
        await db.dispose()

    assert (result.sent, result.failed) == (0, 1)
    assert "quota notice not sent" in caplog.text and f"127.0.0.1:{server.port}" in caplog.text
    assert settings.SMTP_URL is not None
    for secret in (PASSWORD, encoded, "S3cr3t", settings.SMTP_URL.get_secret_value()):
        assert secret not in caplog.text
    assert server.inbox.messages == []


async def test_concurrent_runs_send_each_notice_once(
    settings: Settings, smtp: SmtpServer, conn: asyncpg.Connection
) -> None:
    accounts = [await make_account(conn) for _ in range(6)]
    for account, _ in accounts:
        await set_usage(conn, account, 1000)
    databases = [Database(settings) for _ in range(3)]
    try:
        results = await asyncio.gather(*(notify(d, settings, now=NOW) for d in databases))
    finally:
        for database in databases:
            await database.dispose()

    assert sum(r.sent for r in results) == 6
    assert sorted(m["To"] for m in smtp.inbox.messages) == sorted(a for _, a in accounts)


async def test_a_run_is_bounded_and_the_next_one_continues(
    db: Database,
    settings: Settings,
    smtp: SmtpServer,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "MAX_ACCOUNTS_PER_RUN", 2)
    for _ in range(3):
        account, _ = await make_account(conn)
        await set_usage(conn, account, 800)

    first = await notify(db, settings, now=NOW)
    second = await notify(db, settings, now=NOW)

    assert (first.checked, first.sent, second.checked, second.sent) == (2, 2, 1, 1)
    assert len({m["To"] for m in smtp.inbox.messages}) == 3


def test_price_per_call_is_exact() -> None:
    assert price_per_call(200, "usd") == "$0.002"
    assert price_per_call(150, "usd") == "$0.0015"
    assert price_per_call(100_000, "usd") == "$1.00"
    assert price_per_call(5_000, "eur") == "0.05 EUR"
