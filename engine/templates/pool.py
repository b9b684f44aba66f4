"""A fixed number of sandbox workers shared by the threads that render templates."""

from __future__ import annotations

import enum
import threading
from typing import Any

from switchyard.engine import metrics
from switchyard.engine.templates.limits import TemplateLimits
from switchyard.engine.templates.protocol import TemplatesUnavailable
from switchyard.engine.templates.sandbox import SandboxWorker


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class SandboxPool:
    """``limits.workers`` sandbox processes; a caller borrows one for a whole batch.

    A worker that dies or is killed is replaced right away (without waiting for the
    new child to be ready, which the next borrower does), so a runaway template
    costs its own call a failure and the next one at most the ~50 ms of a start.
    A caller waits while every worker is busy; each batch is bounded by its
    templates' timeouts, so the wait is too.
    """

    def __init__(self, limits: TemplateLimits) -> None:
        self._limits = limits
        self._cond = threading.Condition()
        self._state = _State.NEW
        self._idle: list[SandboxWorker] = []
        self._busy: set[SandboxWorker] = set()
        self._vacancies = 0  # workers to start when the last attempt failed

    def start(self) -> None:
        """Start the workers and wait until each has loaded jq; a second call is an error."""
        with self._cond:
            if self._state is not _State.NEW:
                raise RuntimeError("templates: start() can be called once, and not after stop()")
            self._state = _State.RUNNING
        workers: list[SandboxWorker] = []
        try:
            for _ in range(self._limits.workers):
                workers.append(SandboxWorker(self._limits))
            for worker in workers:
                worker.wait_ready()
        except BaseException:
            for worker in workers:
                worker.close()
            with self._cond:
                self._state = _State.STOPPED
            raise
        with self._cond:
            self._idle.extend(workers)

    def stop(self) -> None:
        """Kill every worker; calls in flight raise :class:`TemplatesUnavailable`. Idempotent."""
        with self._cond:
            if self._state is _State.STOPPED:
                return
            self._state = _State.STOPPED
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
            self._cond.notify_all()
        for worker in busy:
            worker.kill(stopping=True)  # its borrower closes it on the way out
        for worker in idle:
            worker.close()

    def run(self, expressions: list[str], context: bytes) -> list[Any]:
        """Evaluate ``expressions`` in one worker: see :meth:`SandboxWorker.run`."""
        worker = self._borrow()
        try:
            return worker.run(expressions, context)
        finally:
            self._give_back(worker)

    def worker_pids(self) -> list[int]:
        """Process ids of the idle workers (for tests and diagnostics)."""
        with self._cond:
            return [worker.pid for worker in self._idle]

    def _borrow(self) -> SandboxWorker:
        with self._cond:
            while True:
                self.check_running()
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        self._busy.add(worker)
                        return worker
                    self._idle_died(worker)
                if self._vacancies:
                    self._vacancies -= 1
                    break
                self._cond.wait()
        return self._hire()

    def _idle_died(self, worker: SandboxWorker) -> None:
        # Killed from outside while idle: replace it rather than fail a template.
        worker.close()
        self._vacancies += 1
        metrics.sandbox_restarted("killed")

    def _hire(self) -> SandboxWorker:
        try:
            worker = SandboxWorker(self._limits)
        except OSError as error:
            with self._cond:
                self._vacancies += 1
                self._cond.notify()
            raise TemplatesUnavailable(f"could not start a jq sandbox process: {error}") from error
        with self._cond:
            if self._state is _State.RUNNING:
                self._busy.add(worker)
                return worker
        worker.close()
        raise TemplatesUnavailable("the template sandbox was stopped")

    def _give_back(self, worker: SandboxWorker) -> None:
        with self._cond:
            self._busy.discard(worker)
            keep = self._state is _State.RUNNING and worker.alive
            if keep:
                self._idle.append(worker)
                self._cond.notify()
                return
            replace = self._state is _State.RUNNING
            if replace:
                self._vacancies += 1
        worker.close()
        if replace:
            metrics.sandbox_restarted(worker.death or "killed")
            self._refill()

    def _refill(self) -> None:
        try:
            worker = SandboxWorker(self._limits)
        except OSError:
            return  # the vacancy stays; the next borrower tries again
        with self._cond:
            if self._state is _State.RUNNING and self._vacancies:
                self._vacancies -= 1
                self._idle.append(worker)
                self._cond.notify()
                return
        worker.close()

    def check_running(self) -> None:
        """Raise :class:`TemplatesUnavailable` unless started and not stopped."""
        if self._state is _State.NEW:
            raise TemplatesUnavailable("the template sandbox is not started: call start() first")
        if self._state is _State.STOPPED:
            raise TemplatesUnavailable("the template sandbox was stopped")
