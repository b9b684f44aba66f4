"""How a run event is kept in Redis (the run's event list, the all-runs stream): its
field values as a JSON array, without the field names and the run id, given back as
the exact JSON the run-events topic carries. An entry of the all-runs stream holds a
step's events: a JSON array of them, each packed.

The RunEvent JSON is ~200 B, half of it names and the run id that the key (or the
stream entry's ``r``) already gives; a chain run's 10 events are held twice, in the
run's list and the capped stream. Packed, an event is ~100 B: ``[seq, kind,
nodeRunId, nodeIdentifier, status, result, at]``. Unpacking zips the names back in
the same order, so ``orjson`` writes byte for byte what ``encode(event)`` wrote.

A JSON object (``{…}``) is kept whole: an event whose fields this module does not
know (a newer schema) is stored so, and records written by an older release (whole
JSON, a stream entry of one event) are read as they are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

# The RunEvent JSON's keys, in the order ``encode`` writes them.
FIELDS = ("runId", "seq", "kind", "nodeRunId", "nodeIdentifier", "status", "result", "at")


class StoredEvent(NamedTuple):
    """A stored event read back: what the streams need of it, and its topic JSON."""

    seq: int
    kind: str
    json: bytes


def pack(value: bytes) -> str:
    """The stored form of the event whose topic JSON is ``value``."""
    data: dict[str, Any] = orjson.loads(value)
    if tuple(data) != FIELDS:
        return value.decode()
    return orjson.dumps([data[name] for name in FIELDS[1:]]).decode()


def unpack(run_id: str, raw: bytes | str) -> StoredEvent:
    """The event stored as ``raw`` for ``run_id``, with its topic JSON."""
    data = orjson.loads(raw)
    if isinstance(data, dict):  # kept whole: its bytes as they are
        text = raw if isinstance(raw, bytes) else raw.encode()
        return StoredEvent(int(data.get("seq") or 0), str(data.get("kind")), text)
    return _stored(run_id, data)


def pack_step(packed: list[str]) -> str:
    """A stream entry's events: the step's packed events (:func:`pack`), in order."""
    return "[" + ",".join(packed) + "]"


def unpack_step(run_id: str, raw: bytes | str) -> list[StoredEvent]:
    """The events of a stream entry: a step's (:func:`pack_step`), or the one whole
    event an older release wrote."""
    data = orjson.loads(raw)
    one = not isinstance(data, list) or (data and not isinstance(data[0], list | dict))
    return [_stored(run_id, item) for item in ([data] if one else data)]


def _stored(run_id: str, item: Any) -> StoredEvent:
    if isinstance(item, dict):
        return StoredEvent(int(item.get("seq") or 0), str(item.get("kind")), orjson.dumps(item))
    record = dict(zip(FIELDS, [run_id, *item], strict=True))
    return StoredEvent(int(record["seq"]), str(record["kind"]), orjson.dumps(record))
