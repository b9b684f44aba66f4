"""The jq sandbox process, and the wire format it shares with its parent.

The jq C library can't be interrupted from Python (it holds the GIL and checks
nothing), so untrusted expressions run here, in a child process the parent can
kill. The parent starts this file by path (``python -I sandbox_child.py MB MS``)
with an empty environment, so this module imports only the standard library,
``jq`` and ``orjson`` — never ``switchyard`` — and ``$ENV``/``env`` are empty.

Wire format, both directions: frames of a 4-byte big-endian length and a body.

* Parent → child, one request = two frames: an orjson header
  ``{"expressions": [...], "max_output_bytes": n}`` and the context as raw JSON
  (sent as-is, so a context is serialized once per render, not once per template).
* Child → parent: one frame per expression, in order, whose first byte is a tag
  (:data:`VALUE` followed by the result as JSON, or an error tag followed by a
  UTF-8 detail). The child stops a request at its first error: the parent raises
  the first failure in document order, so later results would be thrown away.
  A :data:`READY` frame is sent once at start-up.
"""

from __future__ import annotations

import os
import resource
import signal
import struct
import sys
from collections import OrderedDict
from typing import Any

import jq
import orjson

LENGTH = struct.Struct(">I")

READY = b"r"
VALUE = b"v"
COMPILE_ERROR = b"c"
RUNTIME_ERROR = b"e"
TOO_BIG = b"o"  # detail: the size in bytes
TOO_DEEP = b"d"  # output nested deeper than orjson (and so the engine's storage) accepts
OUT_OF_MEMORY = b"m"  # the child exits right after sending it

MAX_DETAIL_CHARS = 1000  # jq error messages can embed whole values (``error(.)``)
PROGRAM_CACHE_SIZE = 256


def encode_output(value: Any) -> bytes:
    """The JSON bytes of a jq result, as the engine will store them.

    jq numbers are doubles; jq.py turns integral ones into Python ints, so ``1e300``
    arrives as an int orjson refuses. Such ints become floats, which is what jq means.
    Raises ``orjson.JSONEncodeError`` when the value nests deeper than 254 levels.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        if "Integer" not in str(error):
            raise
        return orjson.dumps(big_ints_to_floats(value))


def big_ints_to_floats(value: Any) -> Any:
    """Ints outside 64 bits as floats, the doubles jq meant; other values unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else float(value)
    if isinstance(value, list):
        return [big_ints_to_floats(item) for item in value]
    if isinstance(value, dict):
        return {key: big_ints_to_floats(item) for key, item in value.items()}
    return value


def frame(body: bytes) -> bytes:
    return LENGTH.pack(len(body)) + body


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> bytes | None:
    head = _read_exact(fd, LENGTH.size)
    if head is None:
        return None
    return _read_exact(fd, LENGTH.unpack(head)[0])


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Programs:
    """Compiled programs (or their compile errors) by expression, least recently used out."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, Any] = OrderedDict()

    def get(self, expression: str) -> Any:
        entry = self._entries.get(expression)
        if entry is not None:
            self._entries.move_to_end(expression)
            return entry
        try:
            entry = jq.compile(expression)
        except ValueError as error:
            entry = error
        self._entries[expression] = entry
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return entry


def first_output(program: Any, context: str) -> Any:
    """The first output of a compiled program on ``context`` (JSON text); None if none.

    The result iterator must die by reference count, here, and never in a garbage
    cycle (say, a frame kept by a traceback): jq.py's iterator gives its jq state back
    in ``__dealloc__`` through a field the cycle collector may already have cleared,
    which crashes the interpreter. So it is never left in a local when this returns.
    """
    outputs = iter(program.input_text(context))
    try:
        return next(outputs, None)  # no output (``empty``, ``halt``) renders as null
    finally:
        del outputs


def evaluate(programs: _Programs, expression: str, context: str, max_bytes: int) -> bytes:
    """One response body: the tag and the result or the error detail."""
    program = programs.get(expression)
    if isinstance(program, ValueError):
        return COMPILE_ERROR + _detail(program)
    try:
        value = first_output(program, context)
    except ValueError as error:
        return RUNTIME_ERROR + _detail(error)
    try:
        data = encode_output(value)
    except orjson.JSONEncodeError:
        return TOO_DEEP
    if len(data) > max_bytes:
        return TOO_BIG + str(len(data)).encode()
    return VALUE + data


def _detail(error: BaseException) -> bytes:
    return str(error)[:MAX_DETAIL_CHARS].encode("utf-8", "replace")


def _serve(timeout_ms: int) -> None:
    # A backstop for an orphan: if the parent dies while we loop, nobody kills us,
    # so each expression arms a real-time timer whose default action ends the process.
    backstop = 2 * timeout_ms / 1000 + 1
    programs = _Programs(PROGRAM_CACHE_SIZE)
    _write(1, frame(READY))
    while (header := _read_frame(0)) is not None and (context := _read_frame(0)) is not None:
        request = orjson.loads(header)
        text = context.decode()
        for expression in request["expressions"]:
            signal.setitimer(signal.ITIMER_REAL, backstop)
            try:
                body = evaluate(programs, expression, text, request["max_output_bytes"])
            except MemoryError:
                _write(1, frame(OUT_OF_MEMORY))
                sys.exit(3)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            _write(1, frame(body))
            if not body.startswith(VALUE):
                break


def main(argv: list[str]) -> None:
    memory_mb, timeout_ms = int(argv[1]), int(argv[2])
    cap = memory_mb * 1024 * 1024
    # Limits are set here rather than in a preexec_fn, which is unsafe in a threaded parent.
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # jq aborts when out of memory
    # The parent passes an empty environment, but the interpreter adds LC_CTYPE when it
    # coerces the C locale (PEP 538); jq builds $ENV from what is left, so leave nothing.
    os.environ.clear()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    _serve(timeout_ms)


if __name__ == "__main__":
    main(sys.argv)
