"""The SSRF guard for outbound webhooks: which URLs may be registered and which addresses called.

An endpoint URL must be `https` (plain `http` only for the `host:port` pairs of the test/dev
setting `WEBHOOK_ALLOW_HOSTS`), carry no credentials, and its host must resolve *only* to public
unicast addresses: a loopback, private, shared (CGNAT), link-local (cloud metadata), multicast,
reserved, unspecified or documentation address anywhere in the answer refuses the whole host
(IPv4-mapped, NAT64 and 6to4 IPv6 forms are judged by the IPv4 address they carry). The check runs
at registration and again before every attempt; the attempt then connects to the address that was
checked (see `app/webhooks/sender.py`), so a DNS answer that changes in between cannot redirect it.

The resolver is injectable (`Resolver`): tests stub DNS; production uses the system resolver.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.core.errors import AppError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> every address the name resolves to (strings, IPv4 or IPv6)
Resolver = Callable[[str, int], Awaitable[list[str]]]

RESOLVE_TIMEOUT_S = 5.0
METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeWebhookUrl(AppError):
    status_code = 422
    code = "unsafe_webhook_url"
    default_message = "This URL cannot receive webhooks."

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason, fields=[{"field": "url", "issue": message}])
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: connect to `address`, present `host` (Host header, SNI, cert)."""

    scheme: str
    host: str
    port: int
    address: str


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (A and AAAA), bounded in time."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT_S):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why `ip` must not be called (`loopback`, `private`, …), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_problem(embedded, allow_loopback=allow_loopback)
    if ip in METADATA:
        return "metadata_address"
    if ip.is_loopback:
        return None if allow_loopback else "loopback_address"
    if ip.is_unspecified:
        return "unspecified_address"
    if ip.is_link_local:
        return "link_local_address"
    if ip.is_multicast:
        return "multicast_address"
    if ip.is_reserved:
        return "reserved_address"
    if ip.is_private:
        return "private_address"
    if not ip.is_global:  # shared address space (100.64/10), and whatever else is not routable
        return "non_public_address"
    return None


def allowed_hosts(setting: str) -> frozenset[str]:
    return frozenset(item for item in setting.split(",") if item)


def parse_url(url: str, allow: frozenset[str]) -> tuple[str, str, int, bool]:
    """(scheme, host, port, allow-listed) of an endpoint URL, or `UnsafeWebhookUrl`."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl("invalid_url", "The URL cannot be parsed.") from exc
    if parts.scheme not in {"https", "http"} or not host:
        raise UnsafeWebhookUrl("not_https", "The URL must be an absolute https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookUrl("credentials_in_url", "The URL must not contain credentials.")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise UnsafeWebhookUrl(
            "invalid_url", "The URL must not contain spaces or control characters."
        )
    if port == 0:
        raise UnsafeWebhookUrl("invalid_url", "Port 0 cannot receive webhooks.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:  # one spelling on the wire and in the Host header: IDNA (punycode)
        host = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise UnsafeWebhookUrl("invalid_url", "The URL's host is not a valid name.") from exc
    listed = (f"[{host}]:{port}" if ":" in host else f"{host}:{port}") in allow
    if parts.scheme == "http" and not listed:
        raise UnsafeWebhookUrl("not_https", "The URL must use https://.")
    if not listed and (host == "localhost" or host.endswith(".localhost")):
        raise UnsafeWebhookUrl("loopback_address", "localhost cannot receive webhooks.")
    return parts.scheme, host, port, listed


async def check_url(url: str, resolver: Resolver, allow: frozenset[str]) -> Target:
    """Resolve the URL's host once and judge every address; the target pins the first one."""
    scheme, host, port, listed = parse_url(url, allow)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolver(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise UnsafeWebhookUrl("unresolvable_host", f"{host} does not resolve.") from exc
        if not addresses:
            raise UnsafeWebhookUrl("unresolvable_host", f"{host} does not resolve.")
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone index
        except ValueError as exc:
            raise UnsafeWebhookUrl("unresolvable_host", f"{host} gave no usable address.") from exc
        problem = address_problem(ip, allow_loopback=listed)
        if problem is None and listed and not ip.is_loopback:
            problem = "not_loopback"  # the test/dev allowance covers loopback receivers only
        if problem is not None:
            readable = problem.replace("_", " ")
            # the address itself is named only when the caller wrote it: what a name resolves
            # to inside our network is none of the caller's business
            shown = f" ({ip})" if literal is not None else ""
            raise UnsafeWebhookUrl(problem, f"{host} resolves to a {readable}{shown}.")
    return Target(scheme=scheme, host=host, port=port, address=addresses[0].split("%", 1)[0])
