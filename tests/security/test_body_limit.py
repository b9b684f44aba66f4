"""The bridge answers 413 with ``{ok: false, ...}`` to bodies over ``request_body_max_bytes``,
whether the body declares its length or arrives chunked without one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from starlette.types import Message

from switchyard.bridge.body_limit import BodyLimit
from tests.conftest import Services
from tests.security.stack import Stack, running_stack, stack_settings, write_auth_file

LIMIT = 4096


@pytest.fixture
async def stack(
    services: Services, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    auth = write_auth_file(tmp_path_factory.mktemp("limit"))
    settings = stack_settings(
        services, f"bl{uuid.uuid4().hex[:8]}", auth, request_body_max_bytes=LIMIT
    )
    async with running_stack(settings, engine=False) as found:
        yield found


def _workflow(size: int) -> bytes:
    """A workflow definition whose JSON is exactly ``size`` bytes (a padded payload)."""
    base = {
        "identifier": f"big-{uuid.uuid4().hex[:8]}",
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "work", "config": {"type": "KAFKA", "payload": {"pad": ""}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }
    pad = size - len(orjson.dumps(base))
    assert pad >= 0
    base["nodes"][1]["config"]["payload"]["pad"] = "d" * pad  # type: ignore[index]
    return orjson.dumps(base)


def _assert_413(response: Any) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["ok"] is False
    assert body["error"] == "payload_too_large"
    assert f"at most {LIMIT} bytes" in body["message"]
    assert body["message"].startswith("body: ")


@pytest.mark.integration
async def test_a_declared_length_over_the_limit_is_413(stack: Stack) -> None:
    response = await stack.api.call(
        "POST", "/v1/workflows", content=_workflow(LIMIT + 1),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    _assert_413(response)
    assert f"is {LIMIT + 1} bytes" in response.json()["message"]


@pytest.mark.integration
async def test_a_body_at_the_limit_is_served(stack: Stack) -> None:
    response = await stack.api.call(
        "POST", "/v1/workflows", content=_workflow(LIMIT),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 201, response.text


def _chunks(total: int, size: int = 1000) -> Iterator[bytes]:
    body = _workflow(total)
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _stream(total: int) -> AsyncIterator[bytes]:
    for chunk in _chunks(total):
        yield chunk


@pytest.mark.integration
async def test_a_chunked_body_over_the_limit_is_413(stack: Stack) -> None:
    response = await stack.api.call(
        "POST", "/v1/workflows", content=_stream(LIMIT * 3),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert "content-length" not in response.request.headers
    _assert_413(response)
    assert f"is more than {LIMIT} bytes" in response.json()["message"]


@pytest.mark.integration
async def test_a_chunked_body_within_the_limit_is_served(stack: Stack) -> None:
    response = await stack.api.call(
        "POST", "/v1/workflows", content=_stream(LIMIT - 100),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 201, response.text


@pytest.mark.integration
async def test_the_limit_comes_before_auth_and_routing(stack: Stack) -> None:
    big = b"x" * (LIMIT + 1)
    _assert_413(await stack.api.call("POST", "/v1/workflows", who=None, content=big))
    _assert_413(await stack.api.call("PUT", "/nowhere", who=None, content=big))
    _assert_413(await stack.api.call("POST", "/v1/auth/access_token", who=None, content=big))


async def test_a_declared_length_is_refused_without_reading_the_body() -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append("app")

    received = 0

    async def receive() -> Message:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b"x" * 100, "more_body": True}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-length", b"999999")],
    }
    await BodyLimit(app, max_bytes=1024)(scope, receive, send)
    assert received == 0
    assert reached == []
    assert sent[0]["status"] == 413


async def test_the_app_gets_the_body_it_was_sent_unchanged() -> None:
    got: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            got.append(message.get("body", b""))
            if not message.get("more_body"):
                return

    parts = iter([b"abc", b"def", b""])

    async def receive() -> Message:
        part = next(parts)
        return {"type": "http.request", "body": part, "more_body": bool(part)}

    async def send(message: Message) -> None:
        raise AssertionError("nothing sent")

    await BodyLimit(app, max_bytes=1024)({"type": "http", "headers": []}, receive, send)
    assert b"".join(got) == b"abcdef"
