"""The signed envelope Port's execution agent reads from ``<org id>.runs``.

The agent parses each message, takes ``X-Port-Timestamp`` and ``X-Port-Signature``
out of its JSON ``headers`` and recomputes ``"v1," + base64(HMAC-SHA256(client secret,
"<timestamp>.<the rest, as compact JSON>"))``, where the compact JSON is Python's
``json.dumps(message, separators=(",", ":"), ensure_ascii=False)`` of what it parsed.
So the engine signs that very text and sends it with the two keys added: parsing it
back and dumping it (minus the two keys) gives the signed text again, byte for byte,
since ``json`` keeps key order and floats round-trip through their shortest repr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

TIMESTAMP_HEADER = "X-Port-Timestamp"
SIGNATURE_HEADER = "X-Port-Signature"


def compact(message: Any) -> str:
    """``message`` as the agent serialises it to check a signature."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def signature(secret: str, timestamp: int, text: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "<timestamp>.<text>", keyed with secret>``."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp}.{text}".encode(), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_envelope(message: Mapping[str, Any], secret: str | None, timestamp: int) -> bytes:
    """The bytes to publish: ``message`` (its ``headers`` without the two signature
    keys) with ``X-Port-Timestamp`` and ``X-Port-Signature`` added to ``headers``.

    Without a secret the message goes unsigned (the agent then fails the node run:
    it needs ``SWITCHYARD_AGENT_CLIENT_SECRET``)."""
    headers = {
        k: v
        for k, v in dict(message.get("headers") or {}).items()
        if k not in (TIMESTAMP_HEADER, SIGNATURE_HEADER)
    }
    unsigned = {**message, "headers": headers}  # ``headers`` keeps its place
    if secret is None:
        return compact(unsigned).encode("utf-8")
    signed = signature(secret, timestamp, compact(unsigned))
    wire = {**unsigned, "headers": {**headers, TIMESTAMP_HEADER: timestamp,
                                    SIGNATURE_HEADER: signed}}  # fmt: skip
    return compact(wire).encode("utf-8")
