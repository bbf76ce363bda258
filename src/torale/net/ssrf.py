"""The one SSRF guard: every URL Torale fetches or posts to passes through here."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

MAX_URL_LENGTH = 2048

# Always refused, even when private addresses are allowed for development.
_ALWAYS_BLOCKED = [
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, cloud metadata
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba metadata
]


class UnsafeURLError(ValueError):
    """A URL Torale refuses to fetch; the message says why in words a user can act on."""


@dataclass(frozen=True)
class SafeURL:
    url: str
    host: str
    addresses: tuple[str, ...]


def normalize_url(raw: str) -> str:
    """Validate the shape of an http(s) URL and normalise it (lower-case scheme/host, no fragment)."""
    value = raw.strip()
    if not value:
        raise UnsafeURLError("URL is empty")
    if len(value) > MAX_URL_LENGTH:
        raise UnsafeURLError(f"URL is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURLError("URL must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeURLError("URL has no host")
    if parts.username or parts.password:
        raise UnsafeURLError("URL must not carry credentials")
    host = parts.hostname.lower().rstrip(".")
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise UnsafeURLError(f"URL host is not valid: {exc}") from None
    try:
        port = parts.port
    except ValueError:
        raise UnsafeURLError("URL has an invalid port") from None
    default_port = {"http": 80, "https": 443}[scheme]
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != default_port:
        netloc = f"{netloc}:{port}"
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def address_problem(address: str, *, allow_private: bool) -> str | None:
    """Why an IP address may not be contacted, or None when it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _ALWAYS_BLOCKED):
        return "a link-local or metadata address"
    if ip.is_loopback:
        return None if allow_private else "a loopback address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "not a public unicast address"
    if allow_private:
        return None
    if ip.is_private or not ip.is_global:
        return "a private address"
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURLError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    return sorted({str(info[4][0]) for info in infos})


def check_url_sync(raw: str, *, allow_private: bool) -> SafeURL:
    """Normalise a URL and refuse it if any address its host resolves to is not allowed."""
    url = normalize_url(raw)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    for address in addresses:
        problem = address_problem(address, allow_private=allow_private)
        if problem:
            raise UnsafeURLError(f"{host} resolves to {address}, {problem}; refusing to fetch it")
    return SafeURL(url=url, host=host, addresses=tuple(addresses))


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def check_url(raw: str, *, allow_private: bool) -> SafeURL:
    """Async form of `check_url_sync`: DNS runs in a thread, an IP-literal host is checked
    in place (it resolves to itself, and the thread hop costs more than the check)."""
    host = urlsplit(raw.strip()).hostname or ""
    if _is_ip_literal(host):
        return check_url_sync(raw, allow_private=allow_private)
    return await asyncio.to_thread(check_url_sync, raw, allow_private=allow_private)
