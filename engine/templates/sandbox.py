"""Sandbox processes for untrusted jq: one process per worker, a pool of them.

A worker is spoken to over its stdin/stdout pipes (the frames described in
:mod:`~switchyard.engine.templates.sandbox_child`). Each template gets its own
deadline; when it passes, or the child dies (``abort()`` when jq runs out of the
capped address space, a crash on a too-deep value), the worker is killed and the
pool starts a replacement, so the failure costs one template, not the engine.
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from switchyard.engine.templates import sandbox_child as wire
from switchyard.engine.templates.limits import (
    TemplateLimits,
    compile_failed,
    crashed,
    jq_failed,
    out_of_memory,
    timed_out,
    too_big,
    too_deep,
)
from switchyard.engine.templates.protocol import TemplateError, TemplatesUnavailable

STARTUP_SECONDS = 10.0  # a cold interpreter importing jq takes ~50 ms; leave room for load
_CHILD = str(Path(wire.__file__).resolve())
_READ_SIZE = 1 << 16


class SandboxWorker:
    """One sandbox process; used by one thread at a time (the pool sees to that)."""

    def __init__(self, limits: TemplateLimits) -> None:
        self._limits = limits
        self._process = subprocess.Popen(
            [sys.executable, "-I", _CHILD, str(limits.memory_mb), str(limits.timeout_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # jq's `debug` and `stderr` write there; nobody reads
            env={},  # `$ENV` and `env` must show nothing of the server
            cwd="/",
            start_new_session=True,  # a Ctrl-C in the terminal is the engine's to handle
            bufsize=0,
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._stdin = self._process.stdin.fileno()
        self._stdout = self._process.stdout.fileno()
        self._poll = select.poll()
        self._poll.register(self._stdout, select.POLLIN)
        self._buffer = bytearray()
        self._ready = False
        self._stopping = False
        # Why it died, when it did (the pool counts its replacement by this).
        self.death: str | None = None

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return not self._stopping and self._process.poll() is None

    def wait_ready(self) -> None:
        """Block until the child has imported jq and set its limits."""
        if self._ready:
            return
        body = self._receive(time.monotonic() + STARTUP_SECONDS)
        if body != wire.READY:
            self.death = "start_failed"
            self.kill()
            if body is None:
                reason = f"did not start within {STARTUP_SECONDS:g} s"
            else:
                reason = f"failed to start ({_exit_status(self._process.returncode)})"
            raise TemplatesUnavailable(f"the jq sandbox {reason}")
        self._ready = True

    def run(self, expressions: list[str], context: bytes) -> list[Any]:
        """The first output of each expression against ``context`` (JSON), in order.

        Raises the :class:`TemplateError` of the first expression that fails; after a
        timeout, a crash or running out of memory the worker is dead (``alive`` is false).
        """
        self.wait_ready()
        header = orjson.dumps(
            {"expressions": expressions, "max_output_bytes": self._limits.max_output_bytes}
        )
        try:
            self._send(wire.frame(header))
            self._send(wire.LENGTH.pack(len(context)))
            self._send(context)
            return [self._result(expression) for expression in expressions]
        except BrokenPipeError:
            raise self._death(expressions[0]) from None
        except TemplateError:
            raise  # the child stopped after the failing expression: still in step
        except BaseException:
            # Interrupted mid-request (KeyboardInterrupt, a bug): replies may still be on
            # their way, and the next borrower must not read them as its own.
            self.death = self.death or "interrupted"
            self.kill()
            raise

    def kill(self, *, stopping: bool = False) -> None:
        """End the process now; safe from another thread while ``run`` reads its pipe."""
        self._stopping = self._stopping or stopping
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()

    def close(self) -> None:
        """Kill the process and close its pipes; only once no thread uses the worker."""
        self.kill()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._stdin, view) :]

    def _result(self, expression: str) -> Any:
        deadline = time.monotonic() + self._limits.timeout_ms / 1000
        body = self._receive(deadline)
        if body is None:
            self.death = "timeout"
            self.kill()
            if self._stopping:
                raise TemplatesUnavailable("the template sandbox was stopped")
            raise timed_out(expression, self._limits)
        if body[:1] == wire.VALUE:
            return orjson.loads(body[1:])
        raise self._failure(expression, body)

    def _failure(self, expression: str, body: bytes) -> Exception:
        tag, detail = body[:1], body[1:].decode("utf-8", "replace")
        if tag == wire.COMPILE_ERROR:
            return compile_failed(expression, detail)
        if tag == wire.RUNTIME_ERROR:
            return jq_failed(expression, detail)
        if tag == wire.TOO_BIG:
            return too_big(expression, self._limits)
        if tag == wire.TOO_DEEP:
            return too_deep(expression)
        if tag == b"":  # end of file: the child died
            return self._death(expression)
        self.death = "memory" if tag == wire.OUT_OF_MEMORY else "crash"
        self.kill()
        if tag == wire.OUT_OF_MEMORY:
            return out_of_memory(expression, self._limits)
        return crashed(expression, f"unknown reply {tag!r}", self._limits)

    def _death(self, expression: str) -> Exception:
        self.kill()
        if self._stopping:
            return TemplatesUnavailable("the template sandbox was stopped")
        code = self._process.returncode
        if code == -signal.SIGABRT:  # jq's answer to a failed malloc
            self.death = "memory"
            return out_of_memory(expression, self._limits)
        if code == -signal.SIGALRM:  # the child's own backstop timer
            self.death = "timeout"
            return timed_out(expression, self._limits)
        self.death = "crash"
        return crashed(expression, _exit_status(code), self._limits)

    def _receive(self, deadline: float) -> bytes | None:
        """The next frame's body; ``b""`` when the child closed its end; None at the deadline."""
        while (body := self._take_frame()) is None:
            remaining = deadline - time.monotonic()
            # Poll even with no time left: a reply that arrived while this thread was
            # descheduled still counts.
            if not self._poll.poll(max(0, math.ceil(remaining * 1000))):
                if remaining <= 0:
                    return None
                continue
            chunk = os.read(self._stdout, _READ_SIZE)
            if not chunk:
                return b""
            self._buffer += chunk
        return body

    def _take_frame(self) -> bytes | None:
        if len(self._buffer) < wire.LENGTH.size:
            return None
        (size,) = wire.LENGTH.unpack_from(self._buffer)
        end = wire.LENGTH.size + size
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[wire.LENGTH.size : end])
        del self._buffer[:end]
        return body


def _exit_status(code: int) -> str:
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"
