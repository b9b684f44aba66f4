"""The agent's envelope and its signature: what Port's execution agent recomputes
from the message it parsed must be what the engine signed, byte for byte."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from switchyard.topics.agent_envelope import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compact,
    signature,
    signed_envelope,
)

SECRET = "agent-secret-ünïcode-ok"
TS = 1_769_594_400


def _message(payload: dict[str, Any]) -> dict[str, Any]:
    invocation = {"type": "WEBHOOK", "url": "http://h/x", "method": "POST", "headers": {},
                  "agent": True, "synchronized": True}  # fmt: skip
    return {
        "headers": {},
        "payload": {**payload, "action": {"invocationMethod": invocation}},
        "context": {"runId": "wfnr_1", "workflowRunId": "wfr_1"},
    }


def _recomputed(sent: bytes, secret: str) -> tuple[str, str]:
    """What the agent does: parse, take the two keys out of headers, dump compactly,
    HMAC it; returns (the signature it expects, the one it got)."""
    message = json.loads(sent.decode())
    got = message["headers"].pop(SIGNATURE_HEADER)
    timestamp = message["headers"].pop(TIMESTAMP_HEADER)
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    mac = hmac.new(secret.encode(), f"{timestamp}.{text}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode(), got


BODIES = [
    {"service": "paiement", "note": "déploiement à 5 h — 東京 ✓ 🚀"},
    {"nested": {"a": [1, {"b": None, "c": [True, False]}], "z": {"y": {"x": "deep"}}}},
    {"floats": [0.1, 1.0, -0.0, 1e100, 3.141592653589793, 2.5e-8, 12345678901234567890]},
    {"zkey": 1, "akey": 2, "mkey": {"b": 1, "a": 2}},  # not sorted: order as sent
    {"escapes": 'quote " backslash \\ newline \n tab \t \u0001 \u2028'},
]


@pytest.mark.parametrize("body", BODIES)
def test_the_agent_recomputes_the_signed_bytes(body: dict[str, Any]) -> None:
    message = _message(body)
    sent = signed_envelope(message, SECRET, TS)
    parsed = json.loads(sent.decode())
    del parsed["headers"][SIGNATURE_HEADER], parsed["headers"][TIMESTAMP_HEADER]
    signed_text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    assert signed_text == compact(message)  # "headers": {} stays
    assert '"headers":{}' in signed_text
    expected, got = _recomputed(sent, SECRET)
    assert got == expected == signature(SECRET, TS, compact(message))


def test_non_ascii_is_sent_unescaped() -> None:
    sent = signed_envelope(_message({"who": "Zoë 東京"}), SECRET, TS)
    assert "Zoë 東京".encode() in sent
    assert b"\\u" not in sent


def test_headers_carry_the_timestamp_and_a_v1_signature() -> None:
    sent = json.loads(signed_envelope(_message({}), SECRET, TS))
    assert list(sent) == ["headers", "payload", "context"]
    assert sent["headers"][TIMESTAMP_HEADER] == TS
    assert sent["headers"][SIGNATURE_HEADER].startswith("v1,")
    assert len(base64.b64decode(sent["headers"][SIGNATURE_HEADER][3:])) == 32


def test_a_tampered_body_or_another_secret_fails_verification() -> None:
    sent = signed_envelope(_message({"amount": 10}), SECRET, TS)
    tampered = sent.replace(b'"amount":10', b'"amount":11')
    expected, got = _recomputed(tampered, SECRET)
    assert expected != got
    expected, got = _recomputed(sent, "another secret")
    assert expected != got


def test_stale_signature_keys_in_the_message_are_replaced() -> None:
    message = _message({})
    message["headers"] = {SIGNATURE_HEADER: "v1,old", TIMESTAMP_HEADER: 1}
    sent = signed_envelope(message, SECRET, TS)
    expected, got = _recomputed(sent, SECRET)
    assert expected == got


def test_without_a_secret_the_message_goes_unsigned() -> None:
    sent = json.loads(signed_envelope(_message({}), None, TS))
    assert sent["headers"] == {}


def test_the_signature_matches_a_known_vector() -> None:
    # Computed independently: HMAC-SHA256("k", "1.{}"), base64.
    mac = hmac.new(b"k", b"1.{}", hashlib.sha256).digest()
    assert signature("k", 1, "{}") == "v1," + base64.b64encode(mac).decode()
