"""Fixtures of the fuzz tests: the bridge app with the engine running beside it, and a
count of the cases each fuzz test ran (printed in the terminal summary)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas.settings import Settings

CASES: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CASES:
        terminalreporter.section("fuzz cases")
        for name, count in sorted(CASES.items()):
            terminalreporter.write_line(f"{name}: {count} cases")


@pytest.fixture(scope="module")
def fuzz_counter() -> Counter[str]:
    return CASES


class EngineThread:
    """The engine on its own event loop in a thread, for tests whose client is synchronous
    (schemathesis drives the app through its own ASGI client)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="engine", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by start()/stop()
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        with JqTemplates(TemplateLimits.from_settings(self.settings)) as templates:
            async with EngineService(self.settings, templates):
                self._ready.set()
                await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"the engine did not start: {self._error!r}")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        if self._error is not None:
            raise RuntimeError(f"the engine failed: {self._error!r}")


@pytest.fixture(scope="module")
def engine_thread(fuzz_settings: Settings) -> Iterator[EngineThread]:
    engine = EngineThread(fuzz_settings)
    engine.start()
    yield engine
    engine.stop()
