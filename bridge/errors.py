"""The bridge's errors and the handlers that turn every failure into ``{ok: false, ...}``.

::

    ApiError                 an answer other than 2xx, with ``status``, ``code`` and a message
    ├── (400s) raised by routes: not_found, forbidden, conflict, invalid_request...
    └── (401)  unauthorized: no, expired or forged token

Request validation (FastAPI's), malformed JSON and unknown routes are answered here
too, so that no bad input ever reaches a 500. A message names the field:
``body.result: is required when status is COMPLETED``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from redis.exceptions import ClusterDownError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from switchyard.schemas import ProblemsError
from switchyard.schemas.problems import format_path

log = logging.getLogger("switchyard.bridge")

_SCALARS = (str, int, float, bool, type(None))
# Connection failures of the store and the broker (not a script's or a request's error).
_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError, RedisTimeoutError, ClusterDownError, KafkaConnectionError,
    KafkaTimeoutError,
)  # fmt: skip
_RETRY_AFTER_S = 1


class ApiError(Exception):
    """An error answer: ``status`` (HTTP), ``code`` (``error`` in the body), ``message``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def error_response(error: ApiError) -> Response:
    body = {"ok": False, "error": error.code, "message": error.message}
    return json_response(body, error.status, error.headers)


def _where(loc: Sequence[int | str]) -> str:
    # FastAPI puts the source first ("body", "query", "path"); keep it, it tells the
    # client where to look, except for path parameters, whose name is enough.
    parts = list(loc)
    if parts and parts[0] == "path":
        parts = parts[1:]
    return format_path(parts)


def validation_message(errors: Sequence[Any]) -> str:
    """``"body.status: Input should be 'IN_PROGRESS' or 'COMPLETED' (got 'DONE'); ..."``."""
    problems = []
    for error in errors:
        kind = error.get("type")
        if kind == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "")
            problems.append(f"body: is not valid JSON ({detail})" if detail else "body: not JSON")
            continue
        where = _where(error.get("loc", ()))
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            message = "is not a known field"
        else:
            message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
            value = error.get("input")
            if kind != "value_error" and isinstance(value, _SCALARS):
                message += f" (got {value!r})"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    """Every error answer has the ``{ok: false, error, message}`` body."""

    async def on_api_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return error_response(error)

    async def on_problems(_: Request, error: Exception) -> Response:
        return error_response(invalid(str(error)))

    async def on_validation(_: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return error_response(invalid(validation_message(error.errors())))

    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
            return error_response(not_found(message))
        if error.status_code == 400 and isinstance(error.__cause__, ValueError):
            # FastAPI answers 400 to a body it can't decode at all (bytes that are not
            # UTF-8); for the client that is invalid JSON like any other: 422.
            return error_response(invalid(f"body: is not valid JSON ({error.__cause__})"))
        if error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
            return error_response(ApiError(405, "method_not_allowed", message))
        return error_response(ApiError(error.status_code, "http_error", str(error.detail)))

    async def on_unavailable(request: Request, error: Exception) -> Response:
        # Redis or Kafka not answering is the service's state, not a bug of the server:
        # a 503 the client may retry, named for what did not answer.
        what = "Kafka" if isinstance(error, KafkaError) else "Redis"
        log.warning("%s unavailable on %s %s: %r", what, request.method, request.url.path, error)
        message = f"{what} did not answer ({type(error).__name__}); retry shortly"
        headers = {"Retry-After": str(_RETRY_AFTER_S)}
        return error_response(ApiError(503, "unavailable", message, headers))

    async def on_unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(ApiError(500, "internal_error", "the server failed; see its log"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(ProblemsError, on_problems)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for unavailable in _UNAVAILABLE:
        app.add_exception_handler(unavailable, on_unavailable)
    app.add_exception_handler(Exception, on_unexpected)
