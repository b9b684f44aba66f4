"""How a node run's log line is kept in the run's log list: packed, a JSON array
``[nodeRunId, logLevel, log, createdAt]`` (and ``tags`` when it has some), without the
field names a chain run's lines would repeat (~35 B a line).

A JSON object is kept and read as it is: a line whose fields this module does not know
(a newer ``NodeRunLog``) is stored so, and lines written by an older release
(``{"n": <node run id>, …}``) are read alike.
"""

from __future__ import annotations

from typing import Any

import orjson

from switchyard.schemas import NodeRunLog

_PACKED = ("logLevel", "log", "createdAt")
_KNOWN = {*_PACKED, "tags"}


def pack(node_run_id: str, entry: NodeRunLog) -> str:
    """The stored line of ``entry``, a log line of node run ``node_run_id``."""
    data = entry.model_dump(mode="json", by_alias=True)
    tags = data.get("tags")
    if not set(data) <= _KNOWN:
        if not tags:
            data.pop("tags", None)
        return orjson.dumps({"n": node_run_id, **data}).decode()
    values = [node_run_id, *(data[name] for name in _PACKED)]
    return orjson.dumps([*values, tags] if tags else values).decode()


def unpack(raw: bytes | str) -> tuple[str, dict[str, Any]]:
    """The node run id of a stored line and the line's fields by their wire names."""
    data = orjson.loads(raw)
    if isinstance(data, dict):
        return str(data.pop("n")), data
    line: dict[str, Any] = dict(zip(_PACKED, data[1:4], strict=True))
    if len(data) > 4:
        line["tags"] = data[4]
    return str(data[0]), line
