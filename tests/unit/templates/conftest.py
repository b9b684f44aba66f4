"""Fixtures of the template tests: one running engine with low limits, and a context."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from switchyard.engine.templates import JqTemplates, TemplateLimits

# Low bounds keep the abusive templates quick: each timeout costs its full 300 ms.
LIMITS = TemplateLimits(timeout_ms=300, max_output_bytes=64 * 1024, memory_mb=64, workers=2)

CONTEXT: dict[str, Any] = {
    "outputs": {
        "trigger": {"environment": "staging", "dependencies": '["db", "cache"]'},
        "build": {"id": 42, "tags": ["a", "b"], "ok": True, "ratio": 0.5, "nothing": None},
        "deploy-prod": {"url": "https://example.test/x", "hits": [3, 1, 2]},
        'a"b': {"c": None},
        "": "empty key",
    },
    "secrets": {"token": "s3cr3t-value"},
    "workflow": {"identifier": "deploy", "version": 3},
    "workflowRun": {"identifier": "wfr_1", "trigger": {"identifier": "trigger"}},
}


@pytest.fixture(scope="session")
def templates() -> Iterator[JqTemplates]:
    with JqTemplates(LIMITS) as engine:
        yield engine


@pytest.fixture
def context() -> dict[str, Any]:
    return CONTEXT


def _wait_until(probe: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll ``probe`` until it is truthy; fail with the last value seen."""
    deadline = time.monotonic() + within
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value: {value!r}")
        time.sleep(0.005)
    return value


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """Wait on a fact (a sandbox worker borrowed, say), never on a fixed sleep."""
    return _wait_until
