"""All SQL of the portal: sign-in links and sessions (each stored as the SHA-256 of its token)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PortalLoginLink, PortalSession

_links = PortalLoginLink.__table__  # type: ignore[attr-defined]
_sessions = PortalSession.__table__  # type: ignore[attr-defined]


async def add_link(
    session: AsyncSession, token_hash: str, email: str, expires_at: datetime
) -> None:
    session.add(PortalLoginLink(token_hash=token_hash, email=email, expires_at=expires_at))
    await session.flush()


async def peek_link(session: AsyncSession, token_hash: str, now: datetime) -> str | None:
    """The email of a link that can still be used (unused, unexpired), without using it."""
    row = await session.execute(
        sa.select(_links.c.email).where(
            _links.c.token_hash == token_hash,
            _links.c.used_at.is_(None),
            _links.c.expires_at > now,
        )
    )
    return row.scalar_one_or_none()


async def use_link(session: AsyncSession, token_hash: str, now: datetime) -> str | None:
    """Mark the link used and return its email; None when it was used, expired or never existed.
    One conditional UPDATE: of two concurrent uses exactly one gets the email."""
    row = await session.execute(
        sa.update(_links)
        .where(
            _links.c.token_hash == token_hash,
            _links.c.used_at.is_(None),
            _links.c.expires_at > now,
        )
        .values(used_at=now)
        .returning(_links.c.email)
    )
    return row.scalar_one_or_none()


async def prune_links(session: AsyncSession, before: datetime) -> None:
    """Forget links that expired before `before` (called now and then by sign-ins)."""
    await session.execute(sa.delete(_links).where(_links.c.expires_at < before))


async def add_session(
    session: AsyncSession, id_hash: str, account_id: str, expires_at: datetime
) -> None:
    session.add(PortalSession(id_hash=id_hash, account_id=account_id, expires_at=expires_at))
    await session.flush()


async def session_account(session: AsyncSession, id_hash: str, now: datetime) -> str | None:
    """The account of a live session."""
    row = await session.execute(
        sa.select(_sessions.c.account_id).where(
            _sessions.c.id_hash == id_hash, _sessions.c.expires_at > now
        )
    )
    return row.scalar_one_or_none()


async def delete_session(session: AsyncSession, id_hash: str) -> None:
    await session.execute(sa.delete(_sessions).where(_sessions.c.id_hash == id_hash))


async def delete_sessions_of(session: AsyncSession, account_id: str, before: datetime) -> int:
    """End every session of the account (sign out everywhere), and anyone's expired ones."""
    result = await session.execute(
        sa.delete(_sessions).where(
            sa.or_(_sessions.c.account_id == account_id, _sessions.c.expires_at < before)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
