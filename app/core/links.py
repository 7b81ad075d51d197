"""Signed, expiring one-click links: upgrade (`GET /v1/billing/upgrade?token=…`, opens
Checkout) and manage (`GET /v1/billing/manage?token=…`, opens the Customer Portal).

The `upgrade_url` in `quota_exceeded` / `feature_not_in_plan` bodies and in notice emails lets the
human behind an agent upgrade without an API key. The token names one account and one plan, expires,
and is MAC'd with a key derived for this purpose only (`Settings.signing_key`): it can open a
Checkout Session for that account and nothing else.
"""

from __future__ import annotations

import re
import time

from app.core.config import Settings
from app.core.sealed import BrokenSeal, seal, unseal

UPGRADE_CONTEXT = b"agentmall/upgrade-link/v1"  # opens Checkout
MANAGE_CONTEXT = b"agentmall/manage-link/v1"  # opens the Customer Portal (a 402's link)
UPGRADE_TTL_S = 7 * 86_400
MAX_TOKEN_LENGTH = 300
_ACCOUNT = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_PLAN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class InvalidLink(ValueError):
    """The token is malformed, forged, or expired."""


def upgrade_token(
    settings: Settings,
    account_id: str,
    plan: str = "pro",
    *,
    now: float = 0,
    context: bytes = UPGRADE_CONTEXT,
) -> str:
    """A token for `account_id` to buy `plan` (or, with MANAGE_CONTEXT, to manage billing)."""
    expires = int(now or time.time()) + UPGRADE_TTL_S
    return seal(settings.signing_key(context), {"a": account_id, "p": plan, "x": expires})


def upgrade_url(settings: Settings, account_id: str, plan: str = "pro") -> str:
    """The one-click link a person can follow to upgrade this account."""
    token = upgrade_token(settings, account_id, plan)
    return f"{settings.PUBLIC_BASE_URL}/v1/billing/upgrade?token={token}"


def manage_url(settings: Settings, account_id: str) -> str:
    """The one-click link that opens this account's Customer Portal (to fix a failed payment)."""
    token = upgrade_token(settings, account_id, context=MANAGE_CONTEXT)
    return f"{settings.PUBLIC_BASE_URL}/v1/billing/manage?token={token}"


def verify_upgrade_token(
    settings: Settings, token: str, *, now: float = 0, context: bytes = UPGRADE_CONTEXT
) -> tuple[str, str]:
    """(account id, plan) of a valid token for `context`; `InvalidLink` otherwise."""
    try:
        data = unseal(settings.signing_key(context), token, max_length=MAX_TOKEN_LENGTH)
    except BrokenSeal as exc:
        raise InvalidLink(str(exc)) from exc
    account, plan, expires = data.get("a"), data.get("p"), data.get("x")
    if not (isinstance(account, str) and _ACCOUNT.match(account)):
        raise InvalidLink("malformed")
    if not (isinstance(plan, str) and _PLAN.match(plan)) or not isinstance(expires, int):
        raise InvalidLink("malformed")
    if expires < int(now or time.time()):
        raise InvalidLink("expired")
    return account, plan
