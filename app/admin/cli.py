"""The founder's command line, `python -m app.admin`: plans, suspensions and usage without Stripe
or the admin HTTP API (docs/admin.md).

It works on whatever the environment names (`DATABASE_URL`, `REDIS_URL` or the Upstash pair, read
by `get_settings()`), the embedded SQLite file (migrated first, as the app does) when none is set.
Each change makes the same service calls as `app/admin/router.py`, in one unit of work, so the
policy version is bumped in the database and published to Redis once it has committed: every
instance sharing that Redis applies the change on the key's next request.

The embedded Redis lives inside each process, so an API server already running on the embedded
default cannot hear this process's publish: it applies the change when its cached key expires
(`KEY_CACHE_TTL_SECONDS`) or it restarts, and its live usage counters cannot be read from here
(`top` shows the rolled-up usage instead). Set `REDIS_URL` for both to share one Redis.

Exit codes: 0 done, 1 failed (account or plan not found, database unreachable, invalid settings)
with one line on stderr, 2 usage error (argparse). Nothing printed is a secret: no key, no URL
credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.accounts import repository as accounts_repo
from app.accounts import service as accounts
from app.accounts.plans import PlanNotFound
from app.accounts.versions import PolicyVersions
from app.billing import periods as billing_periods
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.errors import AppError
from app.models import Account, utcnow
from app.redis.adapters import build_redis
from app.redis.keys import RedisKeys
from app.redis.port import RedisPort
from app.usage import repository as usage_repo
from app.usage import service as usage
from app.usage.period import month_bounds
from app.usage.schemas import TopAccount, TopAccounts

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MAX_LIMIT = 100  # as `GET /v1/admin/usage/top`


class CommandFailed(AppError):
    """A failure told in one line (exit 1)."""


@dataclass
class Clients:
    """The pieces of `app.services.Services` these commands use, built the same way (this
    package sits below the wiring layer, tests/test_layering.py, so it cannot import it)."""

    db: Database
    redis: RedisPort
    keys: RedisKeys
    versions: PolicyVersions

    @classmethod
    def build(cls, settings: Settings) -> Clients:
        redis = build_redis(settings)
        keys = RedisKeys(settings.REDIS_KEY_PREFIX)
        return cls(Database(settings), redis, keys, PolicyVersions(redis, keys))

    @property
    def embedded_redis(self) -> bool:
        return self.redis.backend == "embedded"

    async def close(self) -> None:
        await self.redis.close()
        await self.db.dispose()


def _positive_limit(text: str) -> int:
    """argparse type: a whole number from 1 to MAX_LIMIT."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m app.admin",
        description="Founder commands on the database and Redis the environment names "
        "(DATABASE_URL, REDIS_URL; the embedded SQLite file when unset).",
        epilog="exit codes: 0 done, 1 failed (e.g. account or plan not found), 2 usage error",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    plan = commands.add_parser("set-plan", help="put an account on a plan (no Stripe involved)")
    plan.add_argument("account", help="account id (acct_…) or email")
    plan.add_argument("plan", help="plan code, e.g. free, pro")
    for name, text in (("suspend", "stop every key of"), ("unsuspend", "lift the suspension of")):
        sub = commands.add_parser(name, help=f"{text} an account, from its next request")
        sub.add_argument("account", help="account id (acct_…) or email")
    top = commands.add_parser("top", help="the heaviest accounts this calendar month")
    top.add_argument("--limit", type=_positive_limit, default=20, help="rows (1-100, default 20)")
    listing = commands.add_parser("accounts", help="list accounts: id, email, plan, status")
    listing.add_argument("--email", metavar="SUBSTRING", help="only emails containing this")
    listing.add_argument("--limit", type=_positive_limit, default=50, help="rows (default 50)")
    return parser


async def _find_account(session: AsyncSession, ref: str) -> Account:
    """The account with this id, or with this email when `ref` contains an @."""
    account: Account | None
    if "@" in ref:
        try:
            email = accounts.normalise_email(ref)
        except accounts.InvalidEmail:
            email = ref.strip()
        account = await accounts_repo.get_account_by_email(session, email)
    else:
        account = await accounts_repo.get_account(session, ref.strip())
    if account is None:
        raise CommandFailed(f"no account with id or email {ref!r}")
    return account


def _embedded_note(clients: Clients) -> None:
    if clients.embedded_redis:
        print(
            "note: embedded Redis: an API server already running applies this within "
            "KEY_CACHE_TTL_SECONDS or at its restart (set REDIS_URL to share one Redis)",
            file=sys.stderr,
        )


async def set_plan(clients: Clients, args: argparse.Namespace) -> None:
    """`set-plan`: as `PUT /v1/admin/accounts/{id}/plan` (the paid period follows too)."""
    async with clients.db.unit() as session:
        account = await _find_account(session, args.account)
        before = account.plan_code
        try:
            account = await accounts.set_account_plan(
                session, clients.versions, account_id=account.id, plan_code=args.plan
            )
        except PlanNotFound:
            plans = await accounts_repo.list_plans(session, public_only=False)
            known = ", ".join(sorted(p.code for p in plans))
            raise CommandFailed(f"unknown plan {args.plan!r} (plans: {known})") from None
        await billing_periods.follow_founder_plan(session, account.id, account.plan_code)
    print(f"{account.id} <{account.email}>: plan {before} -> {account.plan_code}")
    _embedded_note(clients)


async def set_suspended(clients: Clients, args: argparse.Namespace) -> None:
    """`suspend` / `unsuspend`: as `POST /v1/admin/accounts/{id}/suspend|unsuspend`."""
    suspended = args.command == "suspend"
    async with clients.db.unit() as session:
        account = await _find_account(session, args.account)
        before = account.status
        account = await accounts.set_account_suspended(
            session, clients.versions, account_id=account.id, suspended=suspended
        )
    change = "unchanged" if before == account.status else f"{before} -> {account.status}"
    print(f"{account.id} <{account.email}>: {account.status} ({change})")
    if before != account.status:
        _embedded_note(clients)


async def _top(clients: Clients, session: AsyncSession, limit: int) -> TopAccounts:
    """As `GET /v1/admin/usage/top`; from the roll-up when Redis is the embedded one, whose
    live counters belong to the API server's process, not this one."""
    if not clients.embedded_redis:
        return await usage.live_top(session, clients.redis, clients.keys, limit=limit)
    print(
        "note: embedded Redis: its live counters are the API server's own; showing the roll-up",
        file=sys.stderr,
    )
    since, _ = month_bounds(utcnow())
    rows = await usage_repo.top_accounts(session, since=since, limit=limit)
    data = [TopAccount(account_id=a, email=e, plan=p, used=u) for a, e, p, u in rows]
    return TopAccounts(period_start=since, source="rollup", data=data)


async def top(clients: Clients, args: argparse.Namespace) -> None:
    """`top`: the heaviest accounts this calendar month."""
    async with clients.db.unit(read_only=True) as session:
        board = await _top(clients, session, args.limit)
    since = board.period_start.date().isoformat()
    print(f"top usage since {since} ({board.source}): {len(board.data)} account(s)")
    _table(["used", "plan", "account", "email"], [_top_row(r) for r in board.data])


def _top_row(row: TopAccount) -> list[str]:
    return [str(row.used), row.plan, row.account_id, row.email]


async def list_accounts(clients: Clients, args: argparse.Namespace) -> None:
    """`accounts`: id, email, plan and status, newest first."""
    query = sa.select(Account).order_by(col(Account.created_at).desc()).limit(args.limit)
    if args.email:
        query = query.where(col(Account.email).contains(args.email.casefold(), autoescape=True))
    async with clients.db.unit(read_only=True) as session:
        found = (await session.execute(query)).scalars().all()
    rows = [[a.id, a.email, a.plan_code, a.status] for a in found]
    _table(["id", "email", "plan", "status"], rows)
    print(f"{len(rows)} account(s)")


def _table(header: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns, two spaces apart (nothing for no rows)."""
    if not rows:
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


COMMANDS: dict[str, Callable[[Clients, argparse.Namespace], Awaitable[None]]] = {
    "set-plan": set_plan,
    "suspend": set_suspended,
    "unsuspend": set_suspended,
    "top": top,
    "accounts": list_accounts,
}


def _target(settings: Settings, clients: Clients) -> str:
    """Where the command writes, without credentials (a founder should see it is production)."""
    url = make_url(settings.DATABASE_URL)
    where = f"{url.host}/{url.database}" if url.host else url.database
    return f"database: {url.get_backend_name()} {where}; redis: {clients.redis.backend}"


async def run(argv: Sequence[str], settings: Settings | None = None) -> int:
    """Parse `argv` and run the command; returns the exit code (settings: from the environment
    unless given)."""
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        settings = settings or get_settings()
    except ValidationError as exc:  # settings from the environment; never echo their values
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return EXIT_FAILED
    clients = Clients.build(settings)
    try:
        print(_target(settings, clients), file=sys.stderr)
        if settings.is_sqlite:  # the embedded default migrates itself, as app/main.py::_start
            from app.core.embedded import migrate_embedded_database

            await migrate_embedded_database(settings)
        await COMMANDS[args.command](clients, args)
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except (SQLAlchemyError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: database: {first}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await clients.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """The command-line entry point; returns the exit code."""
    try:
        return asyncio.run(run(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
