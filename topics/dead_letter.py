"""The dead-letter envelope: a message the engine could not use, kept with the reason."""

from __future__ import annotations

import base64
from datetime import datetime

import orjson
from pydantic import BaseModel, ConfigDict


class DeadLetter(BaseModel):
    """What was rejected, where from, and why (``code`` is stable, ``reason`` a sentence)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    reason: str
    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    value_encoding: str  # "utf-8", or "base64" for bytes that are not text
    at: str

    @classmethod
    def of(
        cls,
        *,
        code: str,
        reason: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        at: datetime,
    ) -> DeadLetter:
        raw = value or b""
        try:
            text, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw).decode(), "base64"
        return cls(
            code=code,
            reason=reason,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key.decode("utf-8", errors="replace") if key is not None else None,
            value=text,
            value_encoding=encoding,
            at=at.isoformat(),
        )

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump())
