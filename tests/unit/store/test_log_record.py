"""The stored form of log lines (``log_record``): packed without field names, read
back as the same ``NodeRunLog``; a line an older release wrote (``{"n": …}``) read
alike."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from switchyard.engine.store import log_record
from switchyard.schemas import NodeRunLog, node_run_id

NODE_RUN = node_run_id("wfr_AbCdEfGh12345678", "work")
AT = datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize("tags", [{}, {"phase": "deploy"}], ids=["untagged", "tagged"])
def test_a_packed_line_reads_back_as_the_same_entry_and_is_smaller(tags: dict[str, str]) -> None:
    entry = NodeRunLog.model_validate(
        {"logLevel": "WARN", "log": "disk at 91%", "tags": tags, "createdAt": AT}
    )
    packed = log_record.pack(NODE_RUN, entry)
    assert packed.startswith("[")
    whole = orjson.dumps({"n": NODE_RUN, **entry.model_dump(mode="json", by_alias=True)})
    assert len(packed) < len(whole) - 30
    node_run, line = log_record.unpack(packed.encode())
    assert node_run == NODE_RUN
    assert NodeRunLog.model_validate(line) == entry


def test_a_line_an_older_release_wrote_reads_alike() -> None:
    older = orjson.dumps({"n": NODE_RUN, "logLevel": "INFO", "log": "started",
                          "createdAt": "2026-12-01T10:00:00.123Z"})  # fmt: skip
    node_run, line = log_record.unpack(older)
    assert node_run == NODE_RUN
    assert NodeRunLog.model_validate(line) == NodeRunLog.model_validate(
        {"logLevel": "INFO", "log": "started", "createdAt": AT}
    )
