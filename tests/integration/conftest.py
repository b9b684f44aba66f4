"""Fixtures of the engine's integration tests: topics, Redis, a producer, the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas.settings import Settings
from tests.integration.engine_support import echo_server


@pytest.fixture
def templates(settings: Settings) -> Iterator[JqTemplates]:
    """The engine's own bounded jq templates, with a short time bound for the tests."""
    limits = TemplateLimits.from_settings(settings.model_copy(update={"template_timeout_ms": 500}))
    with JqTemplates(limits) as templates:
        yield templates


@pytest.fixture(params=["aiokafka", "faust"])
async def engine(
    request: pytest.FixtureRequest, topics: Settings, templates: Any
) -> AsyncIterator[EngineService]:
    """The engine, once with each inbox driver: both must pass the same tests."""
    driver = topics.model_copy(update={"engine_driver": request.param})
    async with EngineService(driver, templates) as service:
        yield service


@pytest.fixture
def http() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with echo_server() as server:
        yield server
