"""The stored run state's JSON: documents written by the pydantic ``RunState`` of the
release before load unchanged, come back as the same document (with ``format`` now
written), and a document that doesn't fit is refused naming its field.

``states/format1_pydantic.jsonl`` holds states dumped by that release's code (every
history and machine test's states, one per shape, and a partial re-run's), captured
before the state became a msgspec struct.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from msgspec.structs import replace

from switchyard.engine.machine.state import (
    STATE_FORMAT,
    NodeRunState,
    RunState,
    clone_state,
    dump_state,
    load_state,
)
from switchyard.engine.machine.state_format import StateFormatError
from switchyard.schemas import RerunOf, StatusLabel

DOCUMENTS = (Path(__file__).parent / "states" / "format1_pydantic.jsonl").read_bytes().splitlines()
AT = datetime(2026, 1, 28, 10, 0, 0, 250000, tzinfo=UTC)


def _state() -> RunState:
    trigger = NodeRunState(
        id="wfnr_0123456789abcdef", node="trigger", status="COMPLETED", result="SUCCESS",
        output={"n": 1}, created_at=AT, updated_at=AT, completed_at=AT,
        status_label=StatusLabel(text="went left"),
    )  # fmt: skip
    return RunState(
        run_id="wfr_0123456789abcdef", workflow_identifier="wf", workflow_version=2,
        trigger="trigger", created_by="me@example.com", created_at=AT, updated_at=AT,
        outputs={"trigger": {"n": 1}}, node_runs=[trigger], taken=[0],
        rerun_of=RerunOf(identifier="wfr_fedcba9876543210", from_node="deploy"),
    )  # fmt: skip


def test_the_captured_documents_cover_every_field() -> None:
    docs = [orjson.loads(raw) for raw in DOCUMENTS]
    fields = {key for doc in docs for key in doc}
    node_fields = {key for doc in docs for nr in doc["node_runs"] for key in nr}
    # ``trace`` came with format 2, after that release.
    assert fields == set(RunState.__struct_fields__) - {"format", "trace"}
    assert node_fields == set(NodeRunState.__struct_fields__)


@pytest.mark.parametrize("raw", DOCUMENTS, ids=[f"doc{i}" for i in range(len(DOCUMENTS))])
def test_a_document_of_the_pydantic_release_loads_and_dumps_as_the_same_document(
    raw: bytes,
) -> None:
    state = load_state(raw)
    assert state.format == STATE_FORMAT
    # Byte for byte: same fields in the same order, same datetime text, defaults left
    # out; only ``format`` is new, first.
    assert dump_state(state) == b'{"format":%d,' % STATE_FORMAT + raw[1:]
    assert load_state(dump_state(state)) == state


def test_a_state_built_in_code_is_stored_with_its_format_first() -> None:
    raw = dump_state(_state())
    assert raw.startswith(b'{"format":%d,"run_id":"wfr_0123456789abcdef",' % STATE_FORMAT)
    doc = orjson.loads(raw)
    assert doc["created_at"] == "2026-01-28T10:00:00.250000Z"
    assert doc["rerun_of"] == {"identifier": "wfr_fedcba9876543210", "fromNode": "deploy"}
    assert doc["node_runs"][0]["status_label"] == {"text": "went left"}
    assert "status" not in doc  # IN_PROGRESS, the default
    assert load_state(raw) == _state()


def test_clone_state_copies_what_the_machine_changes() -> None:
    state = _state()
    copy = clone_state(state)
    assert copy == state
    copy.outputs["x"] = 1
    copy.node_runs[0].links.append("https://example.com")
    copy.node_runs[0].status = "IN_PROGRESS"
    copy.taken.append(1)
    copy.dead.append("other")
    assert state == _state()


def _broken(**changes: object) -> bytes:
    doc = orjson.loads(dump_state(_state()))
    doc.update(changes)
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_broken(status="DONE"), r"Invalid enum value 'DONE' - at `\$.status`"),
        (_broken(step="3"), r"Expected `int`, got `str` - at `\$.step`"),
        (_broken(run_id="run-1"), r"Expected `str` matching regex .* - at `\$.run_id`"),
        (_broken(created_at="yesterday"), r"Invalid RFC3339 .* - at `\$.created_at`"),
        (_broken(colour="red"), r"Object contains unknown field `colour`"),
        (
            _broken(node_runs=[{"id": "wfnr_0123456789abcdef"}]),
            r"missing required field `node` - at `\$.node_runs\[0\]`",
        ),
        (_broken(status_label={"text": ""}), r"(?s)at least 1 character.* - at `\$.status_label`"),
    ],
    ids=["enum", "int", "run id", "datetime", "unknown field", "missing field", "label"],
)
def test_a_document_that_does_not_fit_is_refused_naming_the_field(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_state(raw)


def test_a_state_of_an_unknown_later_format_is_refused() -> None:
    with pytest.raises(StateFormatError, match="format 99"):
        load_state(_broken(format=99))


def test_replace_keeps_the_format() -> None:
    assert replace(_state(), step=4).format == STATE_FORMAT


def test_a_run_s_trace_is_stored_only_when_it_keeps_one() -> None:
    assert b'"trace"' not in dump_state(_state())
    traced = replace(_state(), trace="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert load_state(dump_state(traced)).trace == traced.trace


def test_a_format_1_document_loads_as_a_run_keeping_no_trace() -> None:
    state = load_state(DOCUMENTS[0])
    assert (state.format, state.trace) == (STATE_FORMAT, None)
    assert dump_state(state).startswith(b'{"format":%d,' % STATE_FORMAT)
