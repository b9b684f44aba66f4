"""Start, stop, context manager, concurrent callers, and the limits from settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from switchyard.engine.templates import (
    JqTemplates,
    TemplateError,
    TemplateLimits,
    TemplatesUnavailable,
)
from switchyard.schemas.settings import Settings

ONE = TemplateLimits(timeout_ms=3000, workers=1)


def test_limits_come_from_the_settings() -> None:
    limits = TemplateLimits.from_settings(Settings(_env_file=None))
    assert limits == TemplateLimits(
        timeout_ms=1000, max_output_bytes=1_048_576, memory_mb=256, workers=2
    )


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match=r"TemplateLimits\.workers: must be at least 1"):
        TemplateLimits(workers=0)


def test_a_second_start_is_an_error_and_stop_is_idempotent() -> None:
    templates = JqTemplates(ONE)
    with pytest.raises(TemplatesUnavailable, match="call start"):
        templates.evaluate(".a", {})
    templates.start()
    try:
        with pytest.raises(RuntimeError, match="called once"):
            templates.start()
        assert templates.evaluate(".a + 1", {"a": 1}) == 2
    finally:
        templates.stop()
    templates.stop()
    with pytest.raises(TemplatesUnavailable, match="stopped"):
        templates.render("{{ .a }}", {"a": 1})
    with pytest.raises(RuntimeError, match="called once"):
        templates.start()


def test_the_context_manager_stops_the_sandbox() -> None:
    with JqTemplates(ONE) as templates:
        assert templates.render("{{ .a | length }}", {"a": "abc"}) == 3
        assert len(templates.sandbox_pids()) == 1
    assert templates.sandbox_pids() == []
    with pytest.raises(TemplatesUnavailable):
        templates.evaluate(".a | length", {"a": "abc"})


def test_stop_ends_a_call_in_flight_at_once(wait_until: Callable[..., Any]) -> None:
    # The template's own bound is ten minutes: only stop() can end the call this soon.
    templates = JqTemplates(TemplateLimits(timeout_ms=600_000, workers=1))
    templates.start()
    raised: list[BaseException] = []

    def hang() -> None:
        try:
            templates.evaluate("def f: f; f", {})
        except (TemplateError, TemplatesUnavailable) as error:
            raised.append(error)

    caller = threading.Thread(target=hang)
    caller.start()
    wait_until(lambda: templates.sandbox_pids() == [])
    templates.stop()
    caller.join(timeout=60)
    assert not caller.is_alive(), f"the call still runs 60 s after stop(); raised: {raised!r}"
    assert len(raised) == 1, raised
    assert isinstance(raised[0], TemplatesUnavailable), raised


def test_concurrent_callers_get_their_own_answers(templates: JqTemplates) -> None:
    config: dict[str, Any] = {
        "id": "{{ .n }}",
        "double": "{{ .n * 2 }}",
        "text": "n={{ .n }}, squares={{ [range(.n)] | map(. * .) | add // 0 }}",
        "fails": '{{ if .n % 7 == 3 then error("seven") else .n end }}',
    }

    def render(n: int) -> Any:
        try:
            return templates.render(config, {"n": n})
        except TemplateError as error:
            return error.message

    with ThreadPoolExecutor(max_workers=6) as executor:
        results = list(executor.map(render, range(60)))
    for n, result in enumerate(results):
        if n % 7 == 3:
            assert result == "jq error: seven"
        else:
            squares = sum(i * i for i in range(n))
            assert result == {
                "id": n,
                "double": n * 2,
                "text": f"n={n}, squares={squares}",
                "fails": n,
            }
