"""The stored form of run events (``event_record``): packed without names or run id,
given back byte for byte as ``encode`` wrote them, a step's in one stream entry; whole
JSON (an older release's, or a shape the module does not know) kept and read as it is."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from switchyard.engine.store import event_record
from switchyard.schemas import RunEvent, encode, node_run_id

RUN_ID = "wfr_AbCdEfGh12345678"
AT = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)


def _events() -> list[RunEvent]:
    node_run = node_run_id(RUN_ID, "work")
    return [
        RunEvent(run_id=RUN_ID, seq=1, kind="run.created", status="IN_PROGRESS", at=AT),
        RunEvent(run_id=RUN_ID, seq=2, kind="nodeRun.created", node_run_id=node_run,
                 node_identifier="work", status="IN_PROGRESS", at=AT),
        RunEvent(run_id=RUN_ID, seq=3, kind="nodeRun.completed", node_run_id=node_run,
                 node_identifier="work", status="COMPLETED", result="FAILED", at=AT),
        RunEvent(run_id=RUN_ID, seq=4, kind="run.completed", status="COMPLETED",
                 result="FAILED", at=AT),
    ]  # fmt: skip


@pytest.mark.parametrize("event", _events(), ids=lambda e: e.kind)
def test_a_packed_event_gives_back_the_topics_bytes_and_is_about_half_their_size(
    event: RunEvent,
) -> None:
    value = encode(event)
    packed = event_record.pack(value)
    assert packed.startswith("[")
    assert RUN_ID not in packed
    assert len(packed) < 0.6 * len(value)
    stored = event_record.unpack(RUN_ID, packed.encode())
    assert stored == (event.seq, event.kind, value)
    assert event_record.unpack(RUN_ID, packed) == stored  # str as well as bytes


def test_the_packed_fields_are_the_events_in_the_order_encode_writes_them() -> None:
    assert tuple(orjson.loads(encode(_events()[2]))) == event_record.FIELDS


def test_whole_json_is_kept_and_read_as_it_is() -> None:
    older = encode(_events()[1])  # what a release before packing stored
    assert event_record.unpack(RUN_ID, older) == (2, "nodeRun.created", older)
    unknown = b'{"runId":"wfr_AbCdEfGh12345678","seq":5,"kind":"run.updated","extra":1}'
    assert event_record.pack(unknown) == unknown.decode()
    assert event_record.unpack(RUN_ID, unknown).json == unknown


def test_a_stream_entry_holds_a_steps_packed_events_and_older_entries_read_as_they_are() -> None:
    values = [encode(e) for e in _events()]
    entry = event_record.pack_step([event_record.pack(v) for v in values])
    assert [e.json for e in event_record.unpack_step(RUN_ID, entry.encode())] == values
    assert [e.seq for e in event_record.unpack_step(RUN_ID, entry)] == [1, 2, 3, 4]
    # An older release's entry: one event, whole; or one packed event.
    assert event_record.unpack_step(RUN_ID, values[1]) == [(2, "nodeRun.created", values[1])]
    one = event_record.pack(values[2])
    assert event_record.unpack_step(RUN_ID, one) == [(3, "nodeRun.completed", values[2])]
