"""configure_logging: the JSON and text lines, their context and trace fields, masking."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from switchyard.schemas.masking import MASK, mask_secrets
from switchyard.schemas.settings import Settings
from switchyard.topics.telemetry.log_context import log_context
from switchyard.topics.telemetry.logs import SecretMasker, configure_logging, secret_values

SECRET = "s3cr3t-value-42"
log = logging.getLogger("switchyard.test_logs")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    names = ["", "aiokafka", "faust", "mode", "uvicorn", "uvicorn.error", "uvicorn.access",
             "uvicorn.asgi"]  # fmt: skip
    loggers = [logging.getLogger(name) for name in names]
    saved = [(list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    excepthook = sys.excepthook
    yield
    sys.excepthook = excepthook
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    logging.captureWarnings(False)


def _json(format: Any = "json", secrets: list[str] | None = None) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(format, "DEBUG", process="engine", secrets=secrets or [], stream=stream)
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_standard_fields() -> None:
    stream = _json()
    log.warning("run %s failed after %d tries", "r_1", 3)
    (line,) = _lines(stream)
    assert set(line) == {"ts", "level", "logger", "message", "process"}
    assert line["level"] == "WARNING"
    assert line["logger"] == "switchyard.test_logs"
    assert line["message"] == "run r_1 failed after 3 tries"
    assert line["process"] == "engine"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"]), line["ts"]


def test_extra_fields_and_exceptions_are_in_the_line() -> None:
    stream = _json()
    try:
        raise ValueError("bad input")
    except ValueError:
        log.exception("could not decode", extra={"reason": "schema", "size": 12})
    (line,) = _lines(stream)
    assert line["reason"] == "schema"
    assert line["size"] == 12
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert line["exc"].endswith("ValueError: bad input")


def test_values_orjson_cannot_encode_are_written_as_text() -> None:
    stream = _json()

    class Odd:
        def __str__(self) -> str:
            return "odd thing"

    log.info("odd", extra={"thing": Odd()})
    (line,) = _lines(stream)
    assert line["thing"] == "odd thing"


def test_context_fields_inside_log_context_only() -> None:
    stream = _json()
    log.info("before")
    with log_context(run_id="r_1", event_type="RunTriggered", topic="t.inbox", partition=3,
                     offset=41, node_run_id=None):  # fmt: skip
        log.info("inside")
    log.info("after")
    before, inside, after = _lines(stream)
    assert "run_id" not in before
    assert "run_id" not in after
    assert {k: inside[k] for k in ("run_id", "event_type", "topic", "partition", "offset")} == {
        "run_id": "r_1",
        "event_type": "RunTriggered",
        "topic": "t.inbox",
        "partition": 3,
        "offset": 41,
    }
    assert "node_run_id" not in inside  # None values are left out


def test_nested_contexts_add_to_the_outer_one() -> None:
    stream = _json()
    with log_context(run_id="r_1", topic="t.inbox"):
        with log_context(node_run_id="n_1", topic="t.other"):
            log.info("inner")
        log.info("outer")
    inner, outer = _lines(stream)
    assert (inner["run_id"], inner["node_run_id"], inner["topic"]) == ("r_1", "n_1", "t.other")
    assert (outer["run_id"], outer["topic"]) == ("r_1", "t.inbox")
    assert "node_run_id" not in outer


def test_the_trace_and_span_ids_of_the_current_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stream = _json()
    with provider.get_tracer("test").start_as_current_span("transition") as span:
        log.info("in a span")
    log.info("no span")
    provider.shutdown()
    in_span, outside = _lines(stream)
    (finished,) = exporter.get_finished_spans()
    assert finished.context is not None
    assert in_span["trace_id"] == format(finished.context.trace_id, "032x")
    assert in_span["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside
    assert "span_id" not in outside


def test_a_secret_is_masked_in_message_args_fields_and_exception() -> None:
    stream = _json(secrets=[SECRET, "abc"])  # too short to mask, as in node run logs
    log.info("token " + SECRET)
    log.info("calling with %s", {"auth": SECRET})
    with log_context(run_id=f"r_{SECRET}"):
        log.info("context", extra={"header": f"Bearer {SECRET}"})
    try:
        raise RuntimeError(f"refused {SECRET}")
    except RuntimeError:
        log.exception("abc failed")
    text = stream.getvalue()
    assert SECRET not in text
    message, args, fields, failed = _lines(stream)
    assert message["message"] == f"token {MASK}"
    assert args["message"] == f"calling with {{'auth': '{MASK}'}}"
    assert (fields["run_id"], fields["header"]) == (f"r_{MASK}", f"Bearer {MASK}")
    assert failed["message"] == "abc failed"
    assert failed["exc"].endswith(f"RuntimeError: refused {MASK}")


def test_a_secret_with_json_escapes_is_masked_in_the_json_line() -> None:
    quoted = 'pa"ss\\word'
    stream = _json(secrets=[quoted])
    log.info("login with %s", quoted)
    assert "ss\\\\word" not in stream.getvalue()
    assert _lines(stream)[0]["message"] == f"login with {MASK}"


@pytest.mark.parametrize(
    "text",
    [
        "abcdef and cdefgh",
        "abcdefgh",  # overlapping: one mask, nothing of either shows
        "abcdcdef",  # touching
        "xabcdx cdef abcd",
        "nothing here",
        "",
    ],
)
def test_the_masker_masks_as_mask_secrets_does(text: str) -> None:
    secrets = {"a": "abcd", "b": "cdef", "c": "ab"}
    assert SecretMasker(secrets.values()).mask(text) == mask_secrets(text, secrets)


def test_many_secrets_are_one_pattern() -> None:
    secrets = [f"secret-number-{i:04d}" for i in range(2000)]
    masker = SecretMasker(secrets)
    assert masker.mask("a secret-number-1999 and secret-number-0007.") == (f"a {MASK} and {MASK}.")


def test_the_settings_secrets_are_all_masked() -> None:
    settings = Settings(
        secrets={"x": "template-secret"},
        token_secret=SecretStr("token-secret"),
        agent_client_secret=SecretStr("agent-secret"),
        ai_api_key=SecretStr("ai-key-value"),
        smtp_password=SecretStr("smtp-password"),
    )
    values = secret_values(settings)
    assert sorted(values) == sorted(
        ["template-secret", "token-secret", "agent-secret", "ai-key-value", "smtp-password"]
    )
    stream = _json(secrets=values)
    log.info(" ".join(values))
    assert _lines(stream)[0]["message"] == " ".join([MASK] * 5)


def test_text_lines_are_readable_with_the_run_and_node_run() -> None:
    stream = io.StringIO()
    configure_logging("text", "INFO", secrets=[SECRET], stream=stream)
    log.debug("not at INFO")
    log.info("plain")
    with log_context(run_id="r_1", node_run_id="n_1", topic="t.inbox"):
        log.warning("using %s", SECRET)
    plain, contextual = stream.getvalue().splitlines()
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO switchyard\.test_logs plain"
    assert re.fullmatch(pattern, plain), plain
    assert contextual.endswith(f" WARNING switchyard.test_logs using {MASK} run_id=r_1 "
                               "node_run_id=n_1"), contextual  # fmt: skip


def test_auto_is_json_off_a_terminal_and_text_on_one() -> None:
    stream = _json("auto")
    log.info("to a file")
    assert _lines(stream)[0]["message"] == "to a file"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    configure_logging("auto", "INFO", stream=terminal)
    log.info("to a terminal")
    assert terminal.getvalue().rstrip().endswith(" INFO switchyard.test_logs to a terminal")
    assert not terminal.getvalue().startswith("{")


def test_one_handler_however_often_configured_and_uvicorn_through_it() -> None:
    first = _json()
    second = _json()
    logging.getLogger("uvicorn.error").warning("port in use")
    logging.getLogger("aiokafka").error("coordinator not available")
    assert first.getvalue() == ""
    (line,) = _lines(second)
    assert (line["logger"], line["message"]) == ("uvicorn.error", "port in use")


def test_an_uncaught_error_is_one_line_too() -> None:
    stream = _json()
    try:
        raise KeyError("missing")
    except KeyError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    (line,) = _lines(stream)
    assert (line["level"], line["logger"]) == ("CRITICAL", "switchyard")
    assert line["exc"].endswith("KeyError: 'missing'")
