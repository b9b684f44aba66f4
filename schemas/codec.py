"""Bytes on the wire ⇄ models: orjson, camelCase, timestamps as ``...000Z``."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from switchyard.schemas.errors import DecodeError, format_problems
from switchyard.schemas.events import INBOX_EVENT_TYPES, InboxEvent
from switchyard.schemas.problems import problems_from

ModelT = TypeVar("ModelT", bound=BaseModel)

_INBOX: TypeAdapter[InboxEvent] = TypeAdapter(InboxEvent)


def encode(model: BaseModel, *, exclude_none: bool = False) -> bytes:
    """The JSON of ``model`` with its wire (camelCase) names.

    ``exclude_none`` drops unset optional fields (a stored workflow); API shapes keep
    their nulls (``result: null`` while a run is in progress).
    """
    return orjson.dumps(model.model_dump(mode="json", by_alias=True, exclude_none=exclude_none))


def _load(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise DecodeError(raw, f"not JSON: {error}") from None


def decode_inbox(raw: bytes) -> InboxEvent:
    """One inbox event from ``raw``; :class:`DecodeError` names what is wrong."""
    data = _load(raw)
    if not isinstance(data, dict):
        raise DecodeError(raw, f"must be a JSON object (got {type(data).__name__})")
    try:
        return _INBOX.validate_python(data)
    except ValidationError as error:
        problems = problems_from(error, tags=INBOX_EVENT_TYPES)
        raise DecodeError(raw, format_problems(problems)) from None


def decode(raw: bytes, model: type[ModelT]) -> ModelT:
    """A message of type ``model`` from ``raw`` (node-run requests, run events...)."""
    data = _load(raw)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise DecodeError(raw, format_problems(problems_from(error))) from None
