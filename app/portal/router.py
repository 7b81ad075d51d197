"""The developer portal's pages (HTML, not in the API schema): sign-in by email link, usage, keys,
billing, webhooks and how to connect. Each form carries a CSRF token; each action reuses the
API's own services and rules."""

import logging
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.accounts.schemas import MAX_GRACE_SECONDS
from app.billing.limits import BillingLimiter
from app.core.errors import AppError
from app.core.routing import Router
from app.deps import ServicesDep, SessionDep
from app.gate.errors import FeatureNotInPlan
from app.models import Account
from app.portal import pages, service
from app.portal.pages import PRE_COOKIE, SESSION_COOKIE, render
from app.services import Services
from app.webhooks import service as webhooks
from app.webhooks.router import ResolverDep
from app.webhooks.schemas import EventType, WebhookCreate

logger = logging.getLogger("agentmall.portal")

router = Router(include_in_schema=False)

STATIC = {"portal.css": "text/css", "portal.js": "text/javascript"}
Token = Annotated[str, PathParam(min_length=1, max_length=200)]
ResourceIdPath = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
GRACE_PATTERN = re.compile(r"[0-9]{1,7}")
GRACE_CHOICES = [(0, "now"), (3600, "in 1 hour"), (86_400, "in 24 hours"), (604_800, "in 7 days")]
EVENT_TYPES: list[str] = list(EventType.__args__)  # type: ignore[attr-defined]
WEBHOOKS_FEATURE = "webhooks"


class WebhookFormInvalid(AppError):
    status_code = 422
    code = "validation_error"
    default_message = "Check the endpoint's URL (https) and choose at least one event."


class PortalNotFound(AppError):
    status_code = 404
    code = "not_found"
    default_message = "No such page."


async def signed_in(request: Request, session: SessionDep) -> Account:
    return await service.current_account(session, pages.read_cookie(request, SESSION_COOKIE))


AccountDep = Annotated[Account, Depends(signed_in)]


def _page(request: Request, services: Services, template: str, **context: Any) -> Response:
    return render(request, services.settings, template, **context)


# --- public pages and sign-in ---


@router.get("/")
async def landing(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    return _page(request, services, "landing.html", plans=await service.plans_on_offer(session))


@router.get("/portal/login")
async def login_form(request: Request, services: ServicesDep) -> Response:
    return _page(request, services, "login.html")


@router.post("/portal/login")
async def send_link(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    form = await pages.read_form(request, services.settings)
    raw = form.get("email", "")
    if not raw.strip() or len(raw) > 254:
        raise accounts.InvalidEmail("Enter your email address (at most 254 characters).")
    email = accounts.normalise_email(raw)
    limiter = services.public_limiter
    await limiter.check(limiter.login_ip, request)
    await limiter.check_identifier(limiter.login_email, service.digest(email))
    await service.send_link(session, services.settings, email)
    return _page(request, services, "check_inbox.html", email=email)


@router.get("/portal/auth/{token}")
async def confirm_form(
    token: Token, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    email = await service.link_email(session, token)
    return _page(request, services, "confirm.html", email=email, token=token)


@router.post("/portal/auth/{token}")
async def sign_in(
    token: Token, request: Request, session: SessionDep, services: ServicesDep
) -> Response:
    settings = services.settings
    await pages.read_form(request, settings)
    done = await service.sign_in(
        session, token, replaces=pages.read_cookie(request, SESSION_COOKIE)
    )
    if done.first_key:  # shown once, in this answer: never in a URL or a cookie
        overview = await service.overview(session, services.redis, services.keys, done.account)
        response: Response = render(
            request,
            settings,
            "overview.html",
            seed=done.session_token,
            account=done.account,
            view=overview,
            new_key=done.first_key,
            notice="Welcome! Your account is ready; here is its first API key.",
        )
    else:
        response = pages.redirect("/portal", settings)
    max_age = int(service.SESSION_TTL.total_seconds())
    pages.set_cookie(response, settings, SESSION_COOKIE, done.session_token, max_age=max_age)
    pages.clear_cookie(response, settings, PRE_COOKIE)
    return response


@router.post("/portal/logout")
async def sign_out(request: Request, session: SessionDep, services: ServicesDep) -> Response:
    await pages.read_form(request, services.settings)
    token = pages.read_cookie(request, SESSION_COOKIE)
    if token:
        await service.sign_out(session, token)
    return _signed_out(services)


@router.post("/portal/logout-all")
async def sign_out_everywhere(
    request: Request, account: AccountDep, session: SessionDep, services: ServicesDep
) -> Response:
    await pages.read_form(request, services.settings)
    await service.sign_out_everywhere(session, account.id)
    return _signed_out(services)


def _signed_out(services: Services) -> Response:
    response = pages.redirect("/", services.settings)
    pages.clear_cookie(response, services.settings, SESSION_COOKIE)
    return response


# --- the dashboard ---


@router.get("/portal")
async def overview(
    request: Request, account: AccountDep, session: SessionDep, services: ServicesDep
) -> Response:
    view = await service.overview(session, services.redis, services.keys, account)
    return _page(request, services, "overview.html", account=account, view=view, new_key=None)


@router.get("/portal/return")
async def stripe_return(request: Request, services: ServicesDep, status: str = "") -> Response:
    """Where Stripe's pages send the person back (Checkout and the Customer Portal)."""
    messages = {
        "success": "Thank you! Your plan changes within seconds; your API keys stay the same.",
        "cancel": "Checkout was cancelled; nothing changed.",
        "portal": "Your subscription settings are saved.",
    }
    message = messages.get(status, "Welcome back.")
    return _page(request, services, "return.html", message=message)


# --- keys ---


async def _keys_page(
    request: Request,
    account: Account,
    session: AsyncSession,
    services: Services,
    status_code: int = 200,
    **context: Any,
) -> Response:
    rows = await service.key_rows(session, services.redis, services.keys, account)
    context.setdefault("new_key", None)
    context.setdefault("rotated", None)
    return render(
        request,
        services.settings,
        "keys.html",
        status_code=status_code,
        account=account,
        rows=rows,
        grace_choices=GRACE_CHOICES,
        **context,
    )


@router.get("/portal/keys")
async def keys(
    request: Request, account: AccountDep, session: SessionDep, services: ServicesDep
) -> Response:
    return await _keys_page(request, account, session, services)


@router.post("/portal/keys")
async def create_key(
    request: Request, account: AccountDep, session: SessionDep, services: ServicesDep
) -> Response:
    form = await pages.read_form(request, services.settings)
    name = form.get("name", "").strip() or None
    if name is not None and len(name) > 100:
        raise pages.BadForm("A key's name has at most 100 characters.")
    if name is not None and not pages.storable(name):
        raise pages.BadForm("A key's name cannot hold control characters.")
    created = await accounts.create_key(session, account.id, name=name)
    return await _keys_page(
        request, account, session, services, new_key=created.api_key, notice="Key created."
    )


@router.post("/portal/keys/{key_id}/rotate")
async def rotate_key(
    key_id: ResourceIdPath,
    request: Request,
    account: AccountDep,
    session: SessionDep,
    services: ServicesDep,
) -> Response:
    form = await pages.read_form(request, services.settings)
    raw = form.get("grace_seconds", "86400")
    # ASCII digits only: `str.isdigit` accepts "²" (int() then fails) and other scripts' digits.
    if not GRACE_PATTERN.fullmatch(raw) or int(raw) > MAX_GRACE_SECONDS:
        raise pages.BadForm("Choose when the old key stops: now to 7 days.")
    rotated = await accounts.rotate_key(
        session, services.versions, account_id=account.id, key_id=key_id, grace_seconds=int(raw)
    )
    return await _keys_page(
        request, account, session, services, new_key=rotated.api_key, rotated=rotated
    )


@router.post("/portal/keys/{key_id}/revoke")
async def revoke_key(
    key_id: ResourceIdPath,
    request: Request,
    account: AccountDep,
    session: SessionDep,
    services: ServicesDep,
) -> Response:
    await pages.read_form(request, services.settings)
    try:
        await accounts.revoke_key(session, services.versions, account_id=account.id, key_id=key_id)
    except accounts.LastKey as exc:
        message = "This is your last working key: rotate it instead, so you are never locked out."
        return await _keys_page(
            request, account, session, services, status_code=exc.status_code, error=message
        )
    return pages.redirect("/portal/keys", services.settings)


# --- billing ---


def _billing_limiter(request: Request, services: Services) -> BillingLimiter:
    return BillingLimiter(services.settings, services.redis, services.client_ip.of(request))


@router.post("/portal/billing/checkout")
async def checkout(
    request: Request, account: AccountDep, session: SessionDep, services: ServicesDep
) -> Response:
    form = await pages.read_form(request, services.settings)
    from app.billing import service as billing

    url = await billing.checkout(
        session,
        services.stripe,
        services.settings,
        _billing_limiter(request, services),
        account=account,
        plan=form.get("plan", "pro")[:32],
    )
    return pages.redirect(url, services.settings)


@router.post("/portal/billing/portal")
async def billing_portal(
    request: Request, account: AccountDep, session: SessionDep, services: ServicesDep
) -> Response:
    await pages.read_form(request, services.settings)
    from app.billing import service as billing

    url = await billing.portal(
        session, services.stripe, services.settings, _billing_limiter(request, services), account
    )
    return pages.redirect(url, services.settings)


# --- webhooks (paid plans) ---


async def _webhooks_page(
    request: Request,
    account: Account,
    session: AsyncSession,
    services: Services,
    status_code: int = 200,
    **context: Any,
) -> Response:
    plan = await service.plan_of(session, account)
    allowed = WEBHOOKS_FEATURE in plan.features
    endpoints = await webhooks.list_for(session, account.id) if allowed else []
    attempts = {
        e.id: await webhooks.attempts(session, account.id, e.id, limit=5) for e in endpoints
    }
    context.setdefault("secret", None)
    return render(
        request,
        services.settings,
        "webhooks.html",
        status_code=status_code,
        account=account,
        allowed=allowed,
        endpoints=endpoints,
        attempts=attempts,
        event_types=EVENT_TYPES,
        **context,
    )


async def _require_webhooks(session: AsyncSession, account: Account) -> None:
    if WEBHOOKS_FEATURE not in (await service.plan_of(session, account)).features:
        raise FeatureNotInPlan("Webhooks come with a paid plan: upgrade on the overview page.")


@router.get("/portal/webhooks")
async def webhooks_page(
    request: Request, account: AccountDep, session: SessionDep, services: ServicesDep
) -> Response:
    return await _webhooks_page(request, account, session, services)


@router.post("/portal/webhooks")
async def add_webhook(
    request: Request,
    account: AccountDep,
    session: SessionDep,
    services: ServicesDep,
    resolver: ResolverDep,
) -> Response:
    form = await pages.read_form(request, services.settings)
    await _require_webhooks(session, account)
    if account.status == "suspended":  # as on the API, whose keys it cannot use: no new endpoint
        raise accounts.AccountSuspended()
    chosen = [e for e in form.get("event_types", "").split(",") if e]
    try:
        body = WebhookCreate(
            url=form.get("url", "").strip(),
            event_types=chosen,  # type: ignore[arg-type]
            description=form.get("description", "").strip() or None,
        )
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise WebhookFormInvalid(
            f"Check {', '.join(fields)}: an https URL and at least one event."
        ) from exc
    created = await webhooks.create(
        session,
        account_id=account.id,
        body=body,
        resolver=resolver,
        allow_hosts=services.settings.WEBHOOK_ALLOW_HOSTS,
    )
    return await _webhooks_page(
        request, account, session, services, secret=created.secret, notice="Endpoint added."
    )


@router.post("/portal/webhooks/{webhook_id}/delete")
async def delete_webhook(
    webhook_id: ResourceIdPath,
    request: Request,
    account: AccountDep,
    session: SessionDep,
    services: ServicesDep,
) -> Response:
    await pages.read_form(request, services.settings)
    await webhooks.delete(session, account.id, webhook_id)
    return pages.redirect("/portal/webhooks", services.settings)


# --- how to connect ---


@router.get("/portal/connect")
async def connect(request: Request, account: AccountDep, services: ServicesDep) -> Response:
    return _page(
        request,
        services,
        "connect.html",
        account=account,
        links=service.snippets(services.settings),
    )


@router.get("/portal/static/{name}")
async def static(name: str, services: ServicesDep) -> Response:
    if name not in STATIC:
        raise PortalNotFound()
    response = FileResponse(Path(pages.HERE / "static" / name), media_type=STATIC[name])
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
