"""The webhook egress guard: which targets it refuses, what the allow-list lets through,
pinning against DNS rebinding, and the request and response size limits."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from switchyard.consumers.egress import (
    EgressPolicy,
    EgressRefused,
    ResponseTooLarge,
    check_addresses,
    check_url,
    install_egress_guard,
    why_refused,
)
from switchyard.schemas.settings import Settings

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "not globally routable"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "private"),
    ("192.0.2.10", "private"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "private"),
    ("::ffff:127.0.0.1", "127.0.0.1"),
    ("::ffff:10.0.0.1", "10.0.0.1"),
    ("64:ff9b::7f00:1", "127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("2002:7f00:1::1", "127.0.0.1"),
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::200e"]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_non_public_addresses_are_refused_with_the_reason(address: str, why: str) -> None:
    reason = why_refused(ipaddress.ip_address(address))
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is None


def test_every_resolved_address_is_checked_not_just_the_first() -> None:
    policy = EgressPolicy.build()
    with pytest.raises(EgressRefused, match=r"evil\.example refused: 10\.0\.0\.5 is private"):
        check_addresses("evil.example", ["93.184.216.34", "10.0.0.5"], policy)
    with pytest.raises(EgressRefused, match="::1 is loopback"):
        check_addresses("evil.example", ["2606:4700::1", "::1"], policy)
    assert str(check_addresses("ok.example", ["93.184.216.34", "2606:4700::1"], policy)) == (
        "93.184.216.34"
    )


def test_no_address_at_all_is_refused() -> None:
    with pytest.raises(EgressRefused, match="resolves to no address"):
        check_addresses("nothing.example", [], EgressPolicy.build())


def test_the_refusal_names_the_setting_that_allows_it() -> None:
    with pytest.raises(EgressRefused, match="SWITCHYARD_WEBHOOK_ALLOW_HOSTS"):
        check_addresses("localhost", ["127.0.0.1"], EgressPolicy.build())


def test_allow_list_by_cidr_by_bare_address_and_by_name() -> None:
    policy = EgressPolicy.build(["10.20.0.0/16", "127.0.0.1", "::1", "Hooks.LAN."])
    assert str(check_addresses("a", ["10.20.3.4"], policy)) == "10.20.3.4"
    assert str(check_addresses("a", ["127.0.0.1"], policy)) == "127.0.0.1"
    assert str(check_addresses("a", ["::1"], policy)) == "::1"
    with pytest.raises(EgressRefused):
        check_addresses("a", ["10.21.0.1"], policy)
    with pytest.raises(EgressRefused):
        check_addresses("a", ["127.0.0.2"], policy)
    assert policy.allows_name("hooks.lan")
    assert policy.allows_name("HOOKS.lan.")
    assert not policy.allows_name("other.lan")


def test_policy_from_settings() -> None:
    settings = Settings(
        webhook_allow_hosts=["192.168.0.0/24", "intranet"],
        webhook_max_request_bytes=2048,
        webhook_max_response_bytes=4096,
    )
    policy = EgressPolicy.from_settings(settings)
    assert policy.allows_name("intranet")
    assert policy.allows_address(ipaddress.ip_address("192.168.0.77"))
    assert not policy.allows_address(ipaddress.ip_address("192.168.1.77"))
    assert (policy.max_request_bytes, policy.max_response_bytes) == (2048, 4096)


def _resolving(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]:8080/x",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/",
        "http://0.0.0.0:6379/",
        "http://[fe80::1%25eth0]/",
        "http://internal.example/",
        "http://mixed.example/",
    ],
)
async def test_check_url_refuses_internal_targets(url: str) -> None:
    resolve = _resolving(
        {"internal.example": ["192.168.0.9"], "mixed.example": ["1.1.1.1", "fd00::1"]}
    )
    with pytest.raises(EgressRefused):
        await check_url(url, EgressPolicy.build(resolve=resolve))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("http://nowhere.example/", "does not resolve"),
    ],
)
async def test_check_url_refuses_other_schemes_and_unresolvable_hosts(url: str, why: str) -> None:
    with pytest.raises(EgressRefused, match=why):
        await check_url(url, EgressPolicy.build(resolve=_resolving({})))


async def test_check_url_returns_the_address_to_pin() -> None:
    policy = EgressPolicy.build(["allowed.lan"], resolve=_resolving({"ok.example": ["1.1.1.1"]}))
    assert str(await check_url("https://ok.example/path", policy)) == "1.1.1.1"
    assert await check_url("http://allowed.lan/", policy) is None  # allowed by name


# -- the guard on a real client, against a local server --------------------------------


class _Handler(BaseHTTPRequestHandler):
    """/big answers 64 KiB (with content-length), /chunked 64 KiB chunked, else echoes."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.path, self.headers.get("host"), body))  # type: ignore[attr-defined]
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        payload = b"y" * 65536 if self.path == "/big" else b'{"ok": true}'
        self.send_response(200)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *_: Any) -> None:
        return


@contextmanager
def _server() -> Iterator[tuple[int, list[tuple[str, str, bytes]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local() -> Iterator[tuple[int, list[tuple[str, str, bytes]]]]:
    with _server() as found:
        yield found


def _client(policy: EgressPolicy) -> httpx.AsyncClient:
    client = httpx.AsyncClient()
    install_egress_guard(client, policy)
    return client


async def test_guard_refuses_loopback_without_the_allow_list(
    local: tuple[int, list[Any]],
) -> None:
    port, seen = local
    async with _client(EgressPolicy.build()) as client:
        with pytest.raises(EgressRefused, match=r"127\.0\.0\.1 is loopback"):
            await client.post(f"http://127.0.0.1:{port}/hook", json={"a": 1})
    assert seen == []  # nothing reached the server


async def test_guard_lets_allow_listed_targets_through(local: tuple[int, list[Any]]) -> None:
    port, seen = local
    async with _client(EgressPolicy.build(["127.0.0.1/32"])) as client:
        response = await client.post(f"http://127.0.0.1:{port}/hook", json={"a": 1})
    assert response.json() == {"ok": True}
    assert seen == [("/hook", f"127.0.0.1:{port}", b'{"a":1}')]


async def test_guard_pins_the_checked_address_and_keeps_the_host_header(
    local: tuple[int, list[Any]],
) -> None:
    port, seen = local
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])  # a second lookup would rebind

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    policy = EgressPolicy.build(["127.0.0.1"], resolve=rebinding)
    async with _client(policy) as client:
        response = await client.get(f"http://hooks.example:{port}/hook")
    assert response.status_code == 200
    assert seen == [("/hook", f"hooks.example:{port}", b"")]


async def test_guard_checks_every_redirect_hop(local: tuple[int, list[Any]]) -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://169.254.169.254/latest"})

    policy = EgressPolicy.build(resolve=_resolving({"public.example": ["93.184.216.34"]}))
    async with httpx.AsyncClient(transport=httpx.MockTransport(redirect)) as client:
        install_egress_guard(client, policy)
        with pytest.raises(EgressRefused, match=r"169\.254\.169\.254 is link-local"):
            await client.get("http://public.example/", follow_redirects=True)


async def test_guard_refuses_a_request_body_over_the_limit(local: tuple[int, list[Any]]) -> None:
    port, seen = local
    policy = EgressPolicy.build(["127.0.0.1"], max_request_bytes=1024)
    async with _client(policy) as client:
        with pytest.raises(EgressRefused, match="request body is 2056 bytes; at most 1024"):
            await client.post(f"http://127.0.0.1:{port}/hook", json={"a": "z" * 2048})
        ok = await client.post(f"http://127.0.0.1:{port}/hook", json={"a": "z" * 1000})
    assert ok.status_code == 200
    assert len(seen) == 1


@pytest.mark.parametrize("path", ["/big", "/chunked"])
async def test_guard_stops_reading_a_response_over_the_limit(
    local: tuple[int, list[Any]], path: str
) -> None:
    port, _ = local
    policy = EgressPolicy.build(["127.0.0.1"], max_response_bytes=16384)
    async with _client(policy) as client:
        with pytest.raises(ResponseTooLarge, match="larger than 16384 bytes"):
            await client.get(f"http://127.0.0.1:{port}{path}")
    roomy = EgressPolicy.build(["127.0.0.1"], max_response_bytes=65536)
    async with _client(roomy) as client:
        assert len((await client.get(f"http://127.0.0.1:{port}{path}")).content) == 65536


async def test_refusals_are_httpx_errors_the_executor_already_reports() -> None:
    """The webhook executor turns any httpx.HTTPError into a FAILED node with its message."""
    async with _client(EgressPolicy.build()) as client:
        with pytest.raises(httpx.HTTPError) as caught:
            await client.get("http://[::1]/")
    assert isinstance(caught.value, EgressRefused)
    assert "::1 is loopback" in str(caught.value)


async def test_guard_counts_a_streamed_request_body_without_a_length(
    local: tuple[int, list[Any]],
) -> None:
    port, _ = local

    async def chunks() -> Any:
        for _ in range(8):
            yield b"z" * 512

    policy = EgressPolicy.build(["127.0.0.1"], max_request_bytes=1024)
    async with _client(policy) as client:
        with pytest.raises(EgressRefused, match="request body is longer; at most 1024"):
            await client.post(f"http://127.0.0.1:{port}/hook", content=chunks())
