"""Signed, expiring one-click links: upgrade (`GET /v1/billing/upgrade?token=…`, opens
Checkout) and manage (`GET /v1/billing/manage?token=…`, opens the Customer Portal).

The `upgrade_url` in `quota_exceeded` / `feature_not_in_plan` bodies and in notice emails lets the
human behind an agent upgrade without an API key. The token names one account and one plan, expires,
and is MAC'd with a key derived for this purpose only (`Settings.signing_key`): it can open a
Checkout Session for that account and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time

from app.core.config import Settings

UPGRADE_CONTEXT = b"agentmall/upgrade-link/v1"  # opens Checkout
MANAGE_CONTEXT = b"agentmall/manage-link/v1"  # opens the Customer Portal (a 402's link)
UPGRADE_TTL_S = 7 * 86_400
MAX_TOKEN_LENGTH = 300
_ACCOUNT = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_PLAN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class InvalidLink(ValueError):
    """The token is malformed, forged, or expired."""


def _mac(settings: Settings, payload: bytes, context: bytes = UPGRADE_CONTEXT) -> str:
    key = settings.signing_key(context)
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()[:18]).decode()


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
    payload = json.dumps({"a": account_id, "p": plan, "x": expires}, separators=(",", ":"))
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{body}.{_mac(settings, payload.encode(), context)}"


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
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise InvalidLink("malformed")
    body, mac = token.split(".")
    try:
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidLink("malformed") from exc
    if not hmac.compare_digest(mac, _mac(settings, payload, context)):
        raise InvalidLink("forged")
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise InvalidLink("malformed") from exc
    account, plan, expires = data.get("a"), data.get("p"), data.get("x")
    if not (isinstance(account, str) and _ACCOUNT.match(account)):
        raise InvalidLink("malformed")
    if not (isinstance(plan, str) and _PLAN.match(plan)) or not isinstance(expires, int):
        raise InvalidLink("malformed")
    if expires < int(now or time.time()):
        raise InvalidLink("expired")
    return account, plan
