"""The Kafka contract as JSON Schema files, generated from the pydantic models.

    python -m switchyard.consumers.contract docs/schemas    # write them
    python -m switchyard.consumers.contract --check docs/schemas   # exit 1 if stale

Messages others produce to us (inbox events) are described as we validate them;
messages we produce (node-run requests, run events, dead letters) as we serialize
them. ``tests/consumers/test_contract.py`` fails when the files are stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import TypeAdapter

from switchyard.schemas import (
    EntityRequest,
    InboxEvent,
    InputResponded,
    NodeRunRequest,
    NodeRunUpdated,
    RunCommand,
    RunEvent,
    RunTriggered,
    TimerFired,
    WebhookRequest,
)
from switchyard.schemas.entities import EntityEvent
from switchyard.topics.dead_letter import DeadLetter

Mode = Literal["validation", "serialization"]

# file stem: (model, how it is described); the topic each one travels on is in docs/kafka.md.
MESSAGES: dict[str, tuple[Any, Mode]] = {
    "InboxEvent": (InboxEvent, "validation"),
    "RunTriggered": (RunTriggered, "validation"),
    "NodeRunUpdated": (NodeRunUpdated, "validation"),
    "RunCommand": (RunCommand, "validation"),
    "TimerFired": (TimerFired, "validation"),
    "InputResponded": (InputResponded, "validation"),
    "EntityRequest": (EntityRequest, "serialization"),
    "EntityEvent": (EntityEvent, "serialization"),
    "NodeRunRequest": (NodeRunRequest, "serialization"),
    "WebhookRequest": (WebhookRequest, "serialization"),
    "RunEvent": (RunEvent, "serialization"),
    "DeadLetter": (DeadLetter, "serialization"),
}

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schemas() -> dict[str, bytes]:
    """File name → content, byte for byte what is written."""
    files: dict[str, bytes] = {}
    for name, (model, mode) in MESSAGES.items():
        schema: dict[str, Any] = TypeAdapter(model).json_schema(by_alias=True, mode=mode)
        schema = {"$schema": _DIALECT, "$id": f"{name}.json", "title": name, **schema}
        text = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        files[f"{name}.json"] = text + b"\n"
    return files


def stale(folder: Path) -> list[str]:
    """Names of the files in ``folder`` that are missing or differ from the models."""
    out = []
    for name, content in json_schemas().items():
        path = folder / name
        if not path.exists() or path.read_bytes() != content:
            out.append(name)
    return out


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in json_schemas().items():
        (folder / name).write_bytes(content)
        written.append(folder / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("docs/schemas"))
    parser.add_argument("--check", action="store_true", help="exit 1 when files are stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.folder)
        for name in names:
            print(f"stale: {args.folder / name}", file=sys.stderr)
        return 1 if names else 0
    for path in write(args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
