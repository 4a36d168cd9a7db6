"""Where the downloader may connect: only http(s), and only to public addresses.

A crawl follows URLs that strangers wrote, so a URL (or a redirect) pointing at 127.0.0.1, a
private network or a cloud metadata service (169.254.169.254) must not be fetched. Two guards,
because aiohttp skips its resolver for IP literals:

- `check_destination` refuses an IP-literal host that is not public, before any connection;
- `GuardedResolver` resolves host names and refuses them when any address they resolve to is not
  public, so that a DNS name pointing inside cannot get through either (and it runs for every
  connection, redirects included).

Both let through what the explicit allow-list names (`--allow-host 127.0.0.1:PORT`): the tests
and the demo serve from loopback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from crawler.errors import UnsafeDestination

ALLOWED_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class BadUrl(ValueError):
    """Not an http(s) URL with a host."""


@dataclasses.dataclass(frozen=True)
class AllowList:
    """Destinations exempt from the public-address rule: entries are "host" (any port) or
    "host:port"; hosts are names or IP addresses ("[::1]:8080" for IPv6 with a port)."""

    entries: frozenset[tuple[str, int | None]] = frozenset()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> "AllowList":
        entries = set()
        for spec in specs:
            entries.add(_parse_host_port(spec))
        return cls(frozenset(entries))

    def allows(self, host: str, port: int | None) -> bool:
        host = host.lower().strip("[]")
        return (host, None) in self.entries or (host, port) in self.entries


def _parse_host_port(spec: str) -> tuple[str, int | None]:
    spec = spec.strip()
    if not spec:
        raise ValueError("empty --allow-host entry")
    if spec.startswith("["):  # [v6]:port
        host, _, rest = spec[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host, port = spec, ""
    if port and not port.isdigit():
        raise ValueError(f"bad port in --allow-host {spec!r}")
    return host.lower(), (int(port) if port else None)


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; raises BadUrl otherwise."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        raise BadUrl(f"unparsable URL: {err}") from err
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise BadUrl(f"scheme {scheme or '(none)'!r} is not http or https")
    host = (parts.hostname or "").lower()
    if not host:
        raise BadUrl("URL has no host")
    if not _ip_literal(host):
        _check_labels(host)
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")  # cloud metadata at 100.100.100.200
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
# NAT64 (RFC 6052): the well-known prefix carries the IPv4 destination in its last 32 bits; the
# local-use prefix (RFC 8215) is site-local by definition, wherever it puts the IPv4 address.
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped (::ffff:a.b.c.d), compatible
    (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:a.b.c.d::) and Teredo (the server and the
    client)."""
    embedded = []
    if ip.ipv4_mapped is not None:
        embedded.append(ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are judged as themselves
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in _NAT64_WELL_KNOWN:
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:
        embedded.extend(ip.teredo)
    return embedded


def is_public_address(address: str) -> bool:
    """True only for a globally routable address (`ipaddress`'s is_global): loopback, private,
    link-local, multicast, reserved, unspecified, documentation, benchmarking and shared
    carrier-grade NAT (100.64.0.0/10, where cloud metadata lives) and local-use NAT64
    (64:ff9b:1::/48) are not. An IPv6 address that embeds an IPv4 one (mapped, compatible,
    well-known NAT64, 6to4, Teredo) is public only when every IPv4 address it carries is."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL_USE:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded:
            return all(is_public_address(str(v4)) for v4 in embedded)
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CARRIER_GRADE_NAT:
        return False
    return ip.is_global and not ip.is_multicast


def _check_labels(host: str) -> None:
    """A DNS name whose labels are not 1..63 bytes (as IDNA writes them) cannot be resolved."""
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    total = 0
    for label in labels:
        if not label:
            raise BadUrl(f"host {host[:80]!r} has an empty DNS label")
        if len(label) > 63:
            raise BadUrl(f"host {host[:80]!r} has a DNS label longer than 63 bytes")
        try:
            size = len(label.encode("idna"))
        except UnicodeError as err:
            raise BadUrl(f"host {host[:80]!r} has a label IDNA cannot encode: {err}") from err
        if size > 63:
            raise BadUrl(f"host {host[:80]!r} has a DNS label of {size} bytes (1..63 allowed)")
        total += size + 1
    if total > 254:
        raise BadUrl(f"host name longer than 253 bytes: {host[:80]!r}")


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
        return True
    except ValueError:
        return False


def check_destination(url: str, allow: AllowList) -> None:
    """Raise BadUrl for a non-http(s) URL and UnsafeDestination for an IP-literal host that is
    not public and not allowed. Host names are checked when they resolve (GuardedResolver)."""
    _, host, port = split_url(url)
    if _ip_literal(host) and not allow.allows(host, port) and not is_public_address(host.strip("[]")):
        raise UnsafeDestination(f"refused non-public address {host}:{port} (not on --allow-host)")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses a host name when any of its addresses is not public,
    unless the name or the address (with the port) is on the allow-list."""

    def __init__(self, allow: AllowList, inner: AbstractResolver | None = None):
        self.allow = allow
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        try:
            infos = await self.inner.resolve(host, port, family)
        except (UnicodeError, ValueError) as err:
            # An empty or over-long label fails IDNA encoding inside getaddrinfo; as an OSError
            # aiohttp reports it as a connection error for this URL instead of failing the batch.
            raise OSError(f"cannot resolve {host!r}: {err}") from err
        if self.allow.allows(host, port):
            return infos
        for info in infos:
            address = info["host"]
            if not is_public_address(address) and not self.allow.allows(address, port):
                raise UnsafeDestination(f"refused {host}:{port}: resolves to non-public address {address} "
                                        f"(not on --allow-host)")
        return infos

    async def close(self) -> None:
        await self.inner.close()
