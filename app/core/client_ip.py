"""The caller's IP address, for per-address limits: proxy headers only as far as they are trusted.

`X-Forwarded-For` is written by the client first and then appended to by every proxy on the way,
so only its right-hand end can be trusted, and only as far as our own proxies wrote it:

* On Vercel (`VERCEL` set) the platform overwrites `x-vercel-forwarded-for`, `x-real-ip` and
  `x-forwarded-for` with the client's address (NOTES.md), so those are read as they are.
* Elsewhere `TRUSTED_PROXIES` lists our proxies (IPs or CIDRs). The header is read only when the
  direct peer is one of them; it is then walked from the right, skipping trusted hops, and the
  first address that is not a trusted proxy is the client (the idea of uvicorn's
  `ProxyHeadersMiddleware`). If every hop is trusted, the left-most one is the client.
* `TRUST_PROXY_HEADERS=true` (deprecated, used only while `TRUSTED_PROXIES` is empty) trusts
  exactly one hop: the direct peer, whatever its address, and so the right-most entry.

Every value is parsed with `ipaddress`; anything that is not an IP address makes the answer fall
back to the direct peer, so a garbage header can neither crash the app nor mint a new identity.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence

from starlette.requests import HTTPConnection

from app.core.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
HeaderReader = Callable[[str], list[str]]  # all values of one header name

UNKNOWN = "unknown"
MAX_HOPS = 32  # only the right-most hops are ours; what is left of them is the client's text
IPV6_BUCKET_PREFIX = 64  # one IPv6 subscriber gets a whole /64: limit it as one address
VERCEL_HEADERS = ("x-vercel-forwarded-for", "x-real-ip", "x-forwarded-for")


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """`"10.0.0.0/8, 127.0.0.1"` → networks; raises ValueError on anything else."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def parse_ip(value: str) -> IPAddress | None:
    """An address from one header entry (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`), or None."""
    text = value.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # IPv4 with a port; an IPv6 address has two colons or more
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def limit_bucket(ip: str) -> str:
    """What a per-address limit counts: the address, or its /64 for IPv6 (one subscriber)."""
    address = parse_ip(ip)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_BUCKET_PREFIX), strict=False))
    return str(address) if address else ip[:64]


class ClientIP:
    """Finds the client's address in a request, trusting proxies only as configured."""

    def __init__(
        self, *, on_vercel: bool, trusted: Sequence[IPNetwork] = (), trust_one_hop: bool = False
    ) -> None:
        self.on_vercel = on_vercel
        self.trusted = tuple(trusted)
        self.trust_one_hop = trust_one_hop and not self.trusted

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientIP:
        """The policy the settings describe (`TRUSTED_PROXIES`, `TRUST_PROXY_HEADERS`, Vercel)."""
        return cls(
            on_vercel=settings.on_vercel,
            trusted=parse_networks(settings.TRUSTED_PROXIES),
            trust_one_hop=settings.TRUST_PROXY_HEADERS,
        )

    def of(self, request: HTTPConnection) -> str:
        """The client's address for this request (the direct peer when nothing better is known)."""
        peer = request.client.host if request.client else None
        return self.resolve(peer, lambda name: request.headers.getlist(name))

    def resolve(self, peer: str | None, header: HeaderReader) -> str:
        """The address from the peer and a reader of header values (all values of a name)."""
        peer_ip = parse_ip(peer or "")
        fallback = str(peer_ip) if peer_ip else (peer or UNKNOWN)[:64]
        if self.on_vercel:
            return self._from_vercel(header) or fallback
        if not (self.trust_one_hop or (peer_ip and self._is_trusted(peer_ip))):
            return fallback
        return self._from_forwarded(header("x-forwarded-for")) or fallback

    def _from_vercel(self, header: HeaderReader) -> str | None:
        for name in VERCEL_HEADERS:
            values = header(name)
            if values and values[0].strip():
                address = parse_ip(values[0].split(",")[0])
                return str(address) if address else None
        return None

    def _from_forwarded(self, values: Iterable[str]) -> str | None:
        """The right-most hop that is not a trusted proxy (see the module docstring)."""
        hops = [hop for value in values for hop in value.split(",")][-MAX_HOPS:]
        if not hops:
            return None
        if self.trust_one_hop:
            address = parse_ip(hops[-1])
            return str(address) if address else None
        client = None
        for hop in reversed(hops):
            client = parse_ip(hop)
            if client is None:
                return None
            if not self._is_trusted(client):
                break
        return str(client) if client else None

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted)
