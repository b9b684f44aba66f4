"""A process runs on the event loop its settings name, with a quieter collector."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
import uvloop

from switchyard.cli import runtime
from switchyard.schemas.settings import Settings


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_uvloop_is_the_default_loop() -> None:
    assert Settings().event_loop == "uvloop"
    assert issubclass(runtime.run(_loop_type(), Settings()), uvloop.Loop)


def test_asyncio_s_own_loop_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_EVENT_LOOP", "asyncio")
    loop = runtime.run(_loop_type(), Settings())
    assert not issubclass(loop, uvloop.Loop)
    assert issubclass(loop, asyncio.BaseEventLoop)


def test_an_unknown_loop_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="event_loop"):
        Settings()


def test_start_up_objects_leave_the_collector_s_view() -> None:
    runtime.quiet_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == 10_000
