"""Where webhook nodes may send requests, and how much they may send and read.

A workflow author chooses a webhook's URL, so without a guard any author could make
the executor call the metadata service (169.254.169.254), Redis on loopback, or a
host on the private network behind it (SSRF). The guard:

- resolves the URL's host and checks **every** address it resolves to (IPv4 and
  IPv6; IPv4-mapped, NAT64, 6to4 and Teredo addresses are checked for the IPv4
  address inside them): loopback, link-local, private, shared, reserved, multicast
  and unspecified addresses are refused unless ``webhook_allow_hosts`` names the
  host or a network holding the address;
- pins the request to the address it checked (the ``Host`` header and TLS SNI keep
  the name), so a second DNS answer can't swap in another address (DNS rebinding);
- refuses request bodies over ``webhook_max_request_bytes`` and stops reading a
  response at ``webhook_max_response_bytes``.

It is installed as httpx event hooks on the executor's client
(:func:`install_egress_guard`), so redirects are checked hop by hop too. Every
refusal is an :class:`httpx.RequestError` whose message says what was refused and
which setting allows it; the executor reports it as the node's failure.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

from switchyard.schemas.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SCHEMES = ("http", "https")


class EgressRefused(httpx.RequestError):
    """A webhook request the guard refused: a disallowed target or a body too large."""


class ResponseTooLarge(httpx.RequestError):
    """A webhook response longer than ``webhook_max_response_bytes``."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the event loop's getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _parse_allow(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return frozenset(names), tuple(networks)


@dataclass(frozen=True)
class EgressPolicy:
    """The allow-list and size limits; :meth:`from_settings` builds it from ``Settings``."""

    allow_names: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    max_request_bytes: int = 1_048_576
    max_response_bytes: int = 1_048_576
    resolve: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, resolve: Resolver = system_resolver
    ) -> EgressPolicy:
        return cls.build(
            settings.webhook_allow_hosts,
            max_request_bytes=settings.webhook_max_request_bytes,
            max_response_bytes=settings.webhook_max_response_bytes,
            resolve=resolve,
        )

    @classmethod
    def build(
        cls,
        allow: Iterable[str] = (),
        *,
        max_request_bytes: int = 1_048_576,
        max_response_bytes: int = 1_048_576,
        resolve: Resolver = system_resolver,
    ) -> EgressPolicy:
        """``allow``: host names and CIDRs (a bare IP is a /32 or /128)."""
        names, networks = _parse_allow(allow)
        return cls(names, networks, max_request_bytes, max_response_bytes, resolve)

    def allows_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allow_names

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allow_networks)


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 addresses an IPv6 one carries (mapped, NAT64, 6to4, Teredo)."""
    found: list[IPAddress] = []
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found += list(address.teredo)
    # The carried IPv4 address first: "it carries 127.0.0.1" says more than "reserved".
    return [*found, address]


def why_refused(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is."""
    for candidate in _embedded(address):
        for kind, flag in (
            ("unspecified", candidate.is_unspecified),
            ("loopback", candidate.is_loopback),
            ("link-local", candidate.is_link_local),
            ("multicast", candidate.is_multicast),
            ("private", candidate.is_private),
            ("reserved", candidate.is_reserved),
            ("not globally routable", not candidate.is_global),
        ):
            if flag:
                inside = "" if candidate is address else f" (it carries {candidate})"
                return f"{address} is {kind}{inside}"
    return None


def check_addresses(host: str, addresses: Sequence[str], policy: EgressPolicy) -> IPAddress:
    """The address to connect to; :class:`EgressRefused` when any of them is refused.

    Every address counts, not just the first: a name that resolves to one public and
    one private address could be connected to either."""
    if not addresses:
        raise _refused(f"{host} resolves to no address")
    checked: list[IPAddress] = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = None if policy.allows_address(address) else why_refused(address)
        if reason is not None:
            raise _refused(
                f"webhook target {host} refused: {reason}; add the host or a network holding "
                "the address to SWITCHYARD_WEBHOOK_ALLOW_HOSTS to allow it"
            )
        checked.append(address)
    return checked[0]


def _refused(message: str, request: httpx.Request | None = None) -> EgressRefused:
    return EgressRefused(message, request=request) if request else EgressRefused(message)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


async def check_url(url: httpx.URL | str, policy: EgressPolicy) -> IPAddress | None:
    """Check where ``url`` goes; returns the address to pin (None: an allowed name).

    Raises :class:`EgressRefused` for a scheme other than http(s), a URL without a
    host, or a host that resolves to a refused address."""
    url = httpx.URL(url) if isinstance(url, str) else url
    if url.scheme not in _SCHEMES:
        raise _refused(f"webhook URL scheme must be http or https (got {url.scheme!r})")
    host = url.host
    if not host:
        raise _refused(f"webhook URL {url} has no host")
    if policy.allows_name(host):
        return None
    literal = _literal(host)
    if literal is not None:
        return check_addresses(host, [str(literal)], policy)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await policy.resolve(host, port)
    except OSError as error:
        raise _refused(f"webhook target {host} does not resolve ({error})") from None
    return check_addresses(host, addresses, policy)


class _LimitedStream(httpx.AsyncByteStream):
    """A body that stops with ``error()`` past ``limit`` bytes (responses, streamed requests)."""

    def __init__(
        self, inner: httpx.AsyncByteStream, limit: int, error: Callable[[], httpx.RequestError]
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise self._error()
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _too_large(request: httpx.Request, limit: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"response from {request.url.host} is larger than {limit} bytes "
        "(SWITCHYARD_WEBHOOK_MAX_RESPONSE_BYTES)",
        request=request,
    )


def _body_too_large(request: httpx.Request, size: int | None, limit: int) -> EgressRefused:
    what = f"is {size} bytes" if size is not None else "is longer"
    return _refused(
        f"webhook request body {what}; at most {limit} may be sent "
        "(SWITCHYARD_WEBHOOK_MAX_REQUEST_BYTES)",
        request,
    )


def _limit_request_body(request: httpx.Request, limit: int) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit():
        if int(length) > limit:
            raise _body_too_large(request, int(length), limit)
        return
    stream = request.stream
    if isinstance(stream, httpx.AsyncByteStream):  # streamed, length unknown: count it
        request.stream = _LimitedStream(
            stream, limit, lambda: _body_too_large(request, None, limit)
        )


def install_egress_guard(client: httpx.AsyncClient, policy: EgressPolicy) -> None:
    """Guard every request ``client`` sends (redirect hops included), see the module doc."""

    async def on_request(request: httpx.Request) -> None:
        _limit_request_body(request, policy.max_request_bytes)
        try:
            pinned = await check_url(request.url, policy)
        except EgressRefused as error:
            raise _refused(str(error), request) from None
        if pinned is not None and _literal(request.url.host) is None:
            # Connect to the address just checked; Host and SNI keep the name.
            if request.url.scheme == "https":
                request.extensions["sni_hostname"] = request.url.host
            request.url = request.url.copy_with(host=str(pinned))

    async def on_response(response: httpx.Response) -> None:
        limit = policy.max_response_bytes
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _too_large(response.request, limit)
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        request = response.request
        response.stream = _LimitedStream(stream, limit, lambda: _too_large(request, limit))

    client.event_hooks = {
        "request": [*client.event_hooks["request"], on_request],
        "response": [*client.event_hooks["response"], on_response],
    }
