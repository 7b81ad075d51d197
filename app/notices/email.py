"""The SMTP sender: any transactional email provider, configured by one URL (`SMTP_URL`).

`smtp://host[:25]` (plain), `smtp+starttls://host[:587]` (upgraded with STARTTLS) or
`smtps://host[:465]` (TLS from the start), each with optional `user:password@` (URL-encoded).
The stdlib client is blocking, so each message is sent in a worker thread, bounded by a timeout.
Neither the URL nor the password ever reaches a log line or an error message.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Protocol
from urllib.parse import unquote, urlsplit

from app.core.config import Settings
from app.models import utcnow

SMTP_TIMEOUT_S = 10.0
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class MailError(Exception):
    """A message the provider did not accept; `permanent` when retrying cannot help (the
    recipient was refused for good), else the provider itself is failing."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Mailer(Protocol):
    """Anything that can deliver one message (raises `MailError` when it cannot)."""

    async def send(self, to: str, subject: str, text: str, html: str | None = None) -> None: ...


@dataclass(frozen=True)
class SmtpConfig:
    """`SMTP_URL`, parsed; the password is kept out of the repr."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """Parse an `smtp://`, `smtp+starttls://` or `smtps://` URL (validated by Settings)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        port = parts.port or DEFAULT_PORTS[scheme]
        return cls(scheme, parts.hostname or "", port, user, password)

    @property
    def where(self) -> str:
        """`host:port`, safe to log."""
        return f"{self.host}:{self.port}"


def build_message(
    sender: str, to: str, subject: str, text: str, html: str | None = None
) -> EmailMessage:
    """A plain-text message, with an HTML alternative when given."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def _connect(config: SmtpConfig, timeout: float) -> smtplib.SMTP:
    """An open, authenticated connection."""
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if config.scheme == "smtps":
        client = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(config.host, config.port, timeout=timeout)
    try:
        if config.scheme == "smtp+starttls":
            client.starttls(context=context)
        if config.username:
            client.login(config.username, config.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _describe(exc: BaseException) -> str:
    """A safe one-line description: the error's class and SMTP code, never its arguments
    (which could echo what we sent)."""
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__}" + (f" {code}" if code else "")


def _is_permanent(exc: BaseException) -> bool:
    """The recipient was refused with a 5xx code: the same message will never be accepted."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return False


class SmtpMailer:
    """Sends each message over its own SMTP connection, in a worker thread."""

    def __init__(self, config: SmtpConfig, sender: str, *, timeout: float = SMTP_TIMEOUT_S):
        self.config = config
        self.sender = sender
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer | None:
        """The configured mailer, or None when no email provider is configured."""
        if settings.SMTP_URL is None or not settings.EMAIL_FROM:
            return None
        return cls(SmtpConfig.from_url(settings.SMTP_URL.get_secret_value()), settings.EMAIL_FROM)

    def __repr__(self) -> str:
        return f"SmtpMailer({self.config.scheme}://{self.config.where})"

    async def send(self, to: str, subject: str, text: str, html: str | None = None) -> None:
        """Deliver one message to the provider; `MailError` (without secrets) if it refuses."""
        message = build_message(self.sender, to, subject, text, html)
        try:
            await asyncio.to_thread(self._send_sync, message)
        except (smtplib.SMTPException, OSError) as exc:
            detail = f"SMTP {self.config.where}: {_describe(exc)}"
            raise MailError(detail, permanent=_is_permanent(exc)) from None

    def _send_sync(self, message: EmailMessage) -> None:
        client = _connect(self.config, self.timeout)
        try:
            client.send_message(message)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
