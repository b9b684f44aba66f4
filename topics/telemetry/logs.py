"""Each process's log lines: one JSON object per line in production, readable on a terminal.

``configure_logging(settings.log_format, settings.log_level, process="engine",
secrets=secret_values(settings))`` once at process start puts one handler on the
root logger. Every line carries what :func:`log_context` says the code is handling
(``run_id``, ``node_run_id``, ``event_type``, ``topic``, ``partition``, ``offset``),
the current OpenTelemetry span's ``trace_id``/``span_id`` when there is one, and the
``extra=`` fields of the call. Every configured secret value is masked in the final
line (message, traceback and fields alike) with the same ``****`` as node run logs.

A JSON line::

    {"ts": "2026-12-02T03:27:10.123Z", "level": "WARNING", "logger": "switchyard.engine",
     "message": "...", "process": "engine", "run_id": "r_1", "event_type": "RunTriggered",
     "topic": "switchyard.inbox", "partition": 3, "offset": 41, "trace_id": "4bf9..."}
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Literal, TextIO

import orjson
from opentelemetry import trace

from switchyard.schemas.masking import MASK, MIN_SECRET_LENGTH
from switchyard.schemas.settings import Settings
from switchyard.topics.telemetry.log_context import current_log_context

LogFormat = Literal["auto", "json", "text"]

# Loggers of libraries too loud at our level: aiokafka logs every transient coordinator
# error at ERROR (they are retried); faust and mode narrate their lifecycles at INFO.
_QUIETED = {"aiokafka": logging.CRITICAL, "faust": logging.WARNING, "mode": logging.WARNING}
# uvicorn's loggers come to our handler (the bridge's and the ops endpoints' servers).
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# Attributes every LogRecord has: what else a record holds came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}
_TEXT_FIELDS = ("run_id", "node_run_id")
_HANDLER_NAME = "switchyard"


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold: templates' ``.secrets``, the token secret, the
    agent's client secret, the AI key and the SMTP password."""
    values = list(settings.secrets.values())
    for secret in (
        settings.token_secret,
        settings.agent_client_secret,
        settings.ai_api_key,
        settings.smtp_password,
    ):
        if secret is not None:
            values.append(secret.get_secret_value())
    return values


class SecretMasker:
    """Replaces every secret value in a text with ``****``, as ``mask_secrets`` does:
    values shorter than ``MIN_SECRET_LENGTH`` are left alone, JSON-escaped forms are
    found too, and overlapping or touching occurrences become one mask.

    One compiled alternation, longest first: a line without a secret costs one regex
    search whatever the number of secrets."""

    def __init__(self, secrets: Iterable[str]) -> None:
        needles: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
                needles |= {secret, orjson.dumps(secret).decode()[1:-1]}
        ordered = sorted(needles, key=len, reverse=True)
        alternation = "|".join(map(re.escape, ordered))
        self._any = re.compile(alternation) if ordered else None
        # At every position, the longest secret starting there (zero-width, so the
        # occurrences that overlap a match are found too).
        self._each = re.compile(f"(?=({alternation}))") if ordered else None

    def __bool__(self) -> bool:
        return self._any is not None

    def mask(self, text: str) -> str:
        if self._any is None or self._each is None or self._any.search(text) is None:
            return text
        pieces: list[str] = []
        position = masked_to = 0
        for found in self._each.finditer(text):
            start, end = found.start(), found.start() + len(found.group(1))
            if start > masked_to or not pieces:
                pieces += [text[position:start], MASK]
            position = masked_to = max(masked_to, end)
        pieces.append(text[position:])
        return "".join(pieces)


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _trace_fields() -> dict[str, str]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES}


def _as_text(value: Any) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (orjson), masked when ``masker`` holds secrets."""

    def __init__(self, process: str | None = None, masker: SecretMasker | None = None) -> None:
        super().__init__()
        self.process = process
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        if self.process:
            line["process"] = self.process
        # The record's own fields win over the context's; the standard ones over both.
        for key, value in {**current_log_context(), **_extra_fields(record)}.items():
            line.setdefault(key, value)
        line.update(_trace_fields())
        text = orjson.dumps(line, default=_as_text, option=orjson.OPT_NON_STR_KEYS).decode()
        return self.masker.mask(text) if self.masker else text


class TextFormatter(logging.Formatter):
    """``2026-12-02 03:27:10,123 INFO switchyard.engine message run_id=… node_run_id=…``."""

    def __init__(self, masker: SecretMasker | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.masker = masker

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = current_log_context()
        found = [f" {k}={context[k]}" for k in _TEXT_FIELDS if k in context]
        return line + "".join(found)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return self.masker.mask(text) if self.masker else text


def configure_logging(
    format: LogFormat,
    level: str | int,
    *,
    process: str | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """The root logger's one handler, writing to ``stream`` (stderr by default) in
    ``format`` (``auto``: text on a terminal, JSON otherwise) at ``level``. Called again,
    it replaces the handler it put there. Returns the handler."""
    stream = stream if stream is not None else sys.stderr
    masker = SecretMasker(secrets)
    if format == "auto":
        format = "text" if _is_terminal(stream) else "json"
    handler = logging.StreamHandler(stream)
    if format == "json":
        handler.setFormatter(JsonFormatter(process, masker))
    else:
        handler.setFormatter(TextFormatter(masker))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in _QUIETED.items():
        logging.getLogger(name).setLevel(quiet)
    for name in _UVICORN:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.captureWarnings(True)  # warnings as log lines, not bare text on stderr
    sys.excepthook = _log_uncaught  # so is the traceback of a crash
    return handler


def _log_uncaught(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    logging.getLogger("switchyard").critical("exiting on an uncaught error",
                                             exc_info=(kind, error, tb))  # fmt: skip


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
