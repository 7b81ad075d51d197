"""One signed HTTP attempt to a checked address (Standard Webhooks).

Signature: `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>`, keyed with
the base64-decoded part of the secret after `whsec_`. `webhook-timestamp` is the wall-clock time
of the attempt (receivers reject stale timestamps), whatever `now` drives the schedule.

Pinning (no DNS-rebinding gap): the guard resolved the host once and judged every address; the
request is then sent to the URL with its host replaced by that address, with the original `Host`
header and the hostname as TLS SNI (`extensions={"sni_hostname": host}`, which httpcore also uses
as `server_hostname`, so the certificate is verified for the hostname, not the IP). Nothing
resolves the name again. Each attempt uses its own client with no connection reuse (a pooled
connection made for one hostname is never handed to another that shares its address), ignores
proxy environment variables, never follows a redirect and is bounded by one total timeout.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import httpx

from app.webhooks.guard import Target

SECRET_PREFIX = "whsec_"
USER_AGENT = "AgentMall-Webhooks/1.0"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one message."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


async def post(
    target: Target, url: str, *, msg_id: str, secret: str, body: bytes, timeout: float
) -> Outcome:
    """POST the signed body to the pinned address; never raises for a network failure."""
    timestamp = int(time.time())
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    default_port = 443 if target.scheme == "https" else 80
    if target.port != default_port:
        host_header = f"{host_header}:{target.port}"
    headers = {
        "Host": host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    started = time.monotonic()
    try:
        pinned = httpx.URL(url).copy_with(host=target.address)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            request = client.build_request(
                "POST", pinned, headers=headers, content=body, extensions=extensions
            )
            # One deadline for the whole attempt (connect, TLS, send, wait for the status line);
            # httpx's own timeouts apply per phase.
            async with asyncio.timeout(timeout):
                response = await client.send(request, stream=True)
                await response.aclose()  # the body is never read
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(None, _ms(started), f"timed out after {timeout:g} s")
    except httpx.HTTPError as exc:
        return Outcome(None, _ms(started), _describe(exc))
    except Exception as exc:  # a URL httpx cannot send: recorded and retried like any failure
        return Outcome(None, _ms(started), f"could not send: {type(exc).__name__}")
    latency = _ms(started)
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code, latency, None)
    if response.is_redirect:
        return Outcome(response.status_code, latency, "redirect not followed")
    return Outcome(response.status_code, latency, f"HTTP {response.status_code}")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:300]
