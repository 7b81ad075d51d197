"""Rendering: Jinja2 templates (loaded on the first page, not at start-up), the pages' security
headers, cookies, form parsing and the HTML form of the one error handler."""

from __future__ import annotations

import functools
import secrets
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.core.config import Settings
from app.core.errors import AppError
from app.portal import service

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent
SESSION_COOKIE = "am_session"
PRE_COOKIE = "am_pre"  # an anonymous browser's CSRF seed (the sign-in forms)
PRE_MAX_AGE = 86_400
MAX_FORM_FIELDS = 30
STRIPE_ORIGINS = ("https://checkout.stripe.com", "https://billing.stripe.com")


class BadForm(AppError):
    status_code = 400
    code = "invalid_form"
    default_message = "The form could not be read; reload the page and try again."


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = _money
    env.filters["when"] = _when
    env.filters["number"] = lambda n: f"{n:,}"
    return env


def _money(cents: int | None, currency: str = "usd") -> str:
    if cents is None:
        return "custom"
    symbol = "$" if currency.lower() == "usd" else f"{currency.upper()} "
    return f"{symbol}{cents / 100:,.2f}".replace(".00", "")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def secure_cookies(settings: Settings) -> bool:
    """`Secure` cookies on https: a public https URL, or any Vercel deployment (https only)."""
    return settings.PUBLIC_BASE_URL.startswith("https://") or settings.on_vercel


def csp(settings: Settings) -> str:
    """Scripts and styles from this origin only, images only as `data:` (the favicon; the chart
    is inline SVG), no fetches; forms post here or to Stripe (Checkout and the Customer Portal
    are reached by a form's redirect); never inside a frame."""
    targets = list(STRIPE_ORIGINS)
    if settings.STRIPE_API_BASE:  # a local Stripe stand-in serves its own pages
        parts = urlsplit(settings.STRIPE_API_BASE)
        targets.append(f"{parts.scheme}://{parts.netloc}")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; "
        f"form-action 'self' {' '.join(targets)}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def redirect(url: str, settings: Settings) -> Response:
    """A 303 after a form (to a page of ours, or to Stripe), with the pages' headers."""
    return protect(RedirectResponse(url, status_code=303), settings)


def protect(response: Response, settings: Settings) -> Response:
    """The headers every portal response carries (pages, redirects and errors)."""
    response.headers["Content-Security-Policy"] = csp(settings)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Sign-in links carry their token in the path: never pass a URL on in a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def csrf_seed(request: Request) -> tuple[str, bool]:
    """What this browser's form tokens are made from: its session cookie when signed in, else its
    pre-session cookie (made now when missing: `True` tells the caller to set it)."""
    session_token = read_cookie(request, SESSION_COOKIE)
    if session_token and service.well_formed(session_token):
        return session_token, False
    pre = read_cookie(request, PRE_COOKIE)
    if pre and service.well_formed(pre):
        return pre, False
    return secrets.token_urlsafe(32), True


def render(
    request: Request,
    settings: Settings,
    template: str,
    *,
    status_code: int = 200,
    seed: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page with the form token of this browser (`seed`: a session just opened)."""
    new_pre = False
    if seed is None:
        seed, new_pre = csrf_seed(request)
    context.setdefault("account", None)
    context.setdefault("notice", None)
    context.setdefault("error", None)
    html = (
        environment()
        .get_template(template)
        .render(csrf=service.csrf_token(settings, seed), path=request.url.path, **context)
    )
    response = HTMLResponse(html, status_code=status_code)
    if new_pre:
        set_cookie(response, settings, PRE_COOKIE, seed, max_age=PRE_MAX_AGE)
    protect(response, settings)
    return response


def cookie_name(settings: Settings, name: str) -> str:
    """On https the `__Host-` prefix: the browser keeps such a cookie only if it is Secure, for
    path `/` and this exact host, so no sibling subdomain can plant a session or a CSRF seed."""
    return f"__Host-{name}" if secure_cookies(settings) else name


def read_cookie(request: Request, name: str) -> str | None:
    settings: Settings = request.app.state.services.settings
    return request.cookies.get(cookie_name(settings, name))


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, *, max_age: int
) -> None:
    response.set_cookie(
        cookie_name(settings, name),
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
    )


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        cookie_name(settings, name),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
    )


async def read_form(request: Request, settings: Settings) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body whose `csrf` matches this browser's token
    (403 otherwise); bounded in fields (the body itself by `BodySizeLimit`)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadForm("Send the form as application/x-www-form-urlencoded.")
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadForm() from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        form[name] = f"{form[name]},{value}" if name in form else value
    seed, fresh = csrf_seed(request)
    if fresh or not service.csrf_valid(settings, seed, form.get("csrf")):
        raise service.CsrfRefused()
    return form


def storable(text: str) -> bool:
    """Text a form may store: no control characters (PostgreSQL text cannot hold NUL at all)."""
    return not any(unicodedata.category(c) == "Cc" for c in text)


def is_portal_path(path: str) -> bool:
    return path == "/" or path == "/portal" or path.startswith("/portal/")


def error_page(request: Request, error: AppError) -> Response | None:
    """The HTML answer to an error on a portal path (None elsewhere: the JSON body applies)."""
    if not is_portal_path(request.url.path) or request.url.path.startswith("/portal/static/"):
        return None
    settings: Settings = request.app.state.services.settings
    if isinstance(error, service.SignInRequired):
        # The session cookie is cleared here, so the sign-in form's token cannot be made from
        # it (the browser would no longer present it): a new pre-session cookie seeds the form.
        pre = secrets.token_urlsafe(32)
        response = render(
            request,
            settings,
            "login.html",
            status_code=error.status_code,
            seed=pre,
            error=error.message,
        )
        clear_cookie(response, settings, SESSION_COOKIE)
        set_cookie(response, settings, PRE_COOKIE, pre, max_age=PRE_MAX_AGE)
        return response
    response = render(
        request,
        settings,
        "error.html",
        status_code=error.status_code,
        code=error.code,
        message=error.message,
    )
    for name, value in error.headers.items():
        response.headers[name] = value
    return response
