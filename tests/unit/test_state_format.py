"""The run-state format registry: old documents are upgraded step by step, in order;
a document newer than the code is refused, naming its format."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from switchyard.engine.machine import state_format
from switchyard.engine.machine.state import STATE_FORMAT, RunState, dump_state, load_state
from switchyard.engine.machine.state_format import (
    CURRENT_FORMAT,
    STEPS,
    Document,
    StateFormatError,
    Step,
    current_format,
    needs_upgrade,
    upgrade_document,
)

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _state() -> RunState:
    return RunState(
        run_id="wfr_0123456789abcdef", workflow_identifier="wf", workflow_version=1,
        trigger="trigger", created_by="me@example.com", created_at=AT, updated_at=AT,
        outputs={"trigger": {"format": "nested, not the document's"}},
    )  # fmt: skip


def _rename_created_by(doc: Document) -> Document:
    """A fake step 1 → 2: ``created_by`` becomes ``creator``."""
    doc = dict(doc)
    doc["creator"] = doc.pop("created_by")
    return doc


def _add_tags(doc: Document) -> Document:
    """A fake step 2 → 3 that only works on a format-2 document."""
    return {**doc, "tags": [doc["creator"]]}


def _steps(*steps: Step) -> dict[int, Step]:
    """A copy of the real registry with fake steps after its real ones."""
    registry = dict(STEPS)
    for step in steps:
        registry[max(registry, default=0) + 1] = step
    return registry


def test_the_machine_and_the_registry_agree_on_the_current_format() -> None:
    assert current_format() == CURRENT_FORMAT == STATE_FORMAT


def test_a_document_without_format_is_format_1_and_comes_back_marked() -> None:
    doc = orjson.loads(dump_state(_state()))
    upgraded = upgrade_document(doc)
    assert upgraded["format"] == CURRENT_FORMAT
    assert "format" not in doc or doc["format"] == CURRENT_FORMAT  # the input is untouched
    assert load_state(orjson.dumps(upgraded)) == _state()


def test_a_fake_step_upgrades_an_old_document() -> None:
    steps = _steps(_rename_created_by)
    old = orjson.loads(dump_state(_state()))
    old.pop("format", None)
    upgraded = upgrade_document(old, steps)
    assert upgraded["format"] == CURRENT_FORMAT + 1
    assert upgraded["creator"] == "me@example.com"
    assert "created_by" not in upgraded
    assert "created_by" in old  # a new dict: the caller's document is left as it was


def test_a_chain_of_steps_applies_in_order() -> None:
    seen: list[int] = []

    def recording(step: Step) -> Step:
        def run(doc: Document) -> Document:
            seen.append(doc.get("format", 1))
            return step(doc)

        return run

    steps = _steps(recording(_rename_created_by), recording(_add_tags))
    first = CURRENT_FORMAT
    upgraded = upgrade_document({"run_id": "wfr_x", "created_by": "a", "format": first}, steps)
    assert upgraded == {"run_id": "wfr_x", "creator": "a", "tags": ["a"], "format": first + 2}
    assert seen == [first, first + 1]
    # A document already at the middle format takes only the last step.
    middle = upgrade_document({"run_id": "wfr_x", "creator": "b", "format": first + 1}, steps)
    assert middle == {"run_id": "wfr_x", "creator": "b", "tags": ["b"], "format": first + 2}


def test_a_document_newer_than_the_code_is_refused_naming_its_format() -> None:
    doc = {"run_id": "wfr_new", "format": CURRENT_FORMAT + 1}
    with pytest.raises(StateFormatError) as caught:
        upgrade_document(doc)
    message = str(caught.value)
    assert f"format {CURRENT_FORMAT + 1}" in message
    assert f"newer than the {CURRENT_FORMAT} this release reads" in message
    assert "wfr_new" in message
    assert (caught.value.found, caught.value.supported) == (CURRENT_FORMAT + 1, CURRENT_FORMAT)
    assert caught.value.run_id == "wfr_new"
    assert needs_upgrade(orjson.dumps(doc))  # the fast check sends it to be refused


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, None, True])
def test_a_broken_format_is_refused_naming_the_field(bad: Any) -> None:
    with pytest.raises(StateFormatError, match=r"format must be a whole number >= 1 \(got "):
        upgrade_document({"run_id": "wfr_bad", "format": bad})


def test_a_registry_with_a_gap_is_refused() -> None:
    with pytest.raises(ValueError, match="without gaps"):
        current_format({1: _rename_created_by, 3: _add_tags})


def test_an_upgraded_document_passes_the_fast_check() -> None:
    steps = _steps(_rename_created_by)
    upgraded = upgrade_document({"run_id": "wfr_x", "created_by": "a"}, steps)
    assert next(iter(upgraded)) == "format"
    assert orjson.dumps(upgraded).startswith(b'{"format":%d,' % (CURRENT_FORMAT + 1))
    assert not needs_upgrade(orjson.dumps(upgraded), steps)


def test_needs_upgrade_takes_the_current_format_without_parsing() -> None:
    current = orjson.dumps({"format": CURRENT_FORMAT, "run_id": "wfr_x"})
    assert not needs_upgrade(current)
    # Not parsed at all: the fast path only looks at the document's start.
    assert not needs_upgrade(b'{"format":%d,not json' % CURRENT_FORMAT)


def test_needs_upgrade_reads_a_document_without_format_as_format_1() -> None:
    doc = orjson.loads(dump_state(_state()))
    del doc["format"]
    raw = orjson.dumps(doc)
    assert needs_upgrade(raw) == (CURRENT_FORMAT != 1)
    assert load_state(raw) == _state()
    # A "format" key nested in an output is not the document's.
    nested = orjson.dumps({"run_id": "wfr_x", "outputs": {"a": {"format": 99}}})
    assert needs_upgrade(nested) == (CURRENT_FORMAT != 1)
    assert needs_upgrade(nested, _steps(_rename_created_by))


def test_needs_upgrade_sees_an_old_format_under_newer_steps() -> None:
    steps = _steps(_rename_created_by)
    assert needs_upgrade(orjson.dumps({"format": CURRENT_FORMAT, "run_id": "wfr_x"}), steps)
    newest = orjson.dumps({"format": CURRENT_FORMAT + 1, "run_id": "wfr_x"})
    assert not needs_upgrade(newest, steps)


def test_a_stored_value_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(StateFormatError, match="must be a JSON object"):
        needs_upgrade(b"[1, 2]")


def test_the_real_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        state_format.STEPS[1] = _rename_created_by  # type: ignore[index]
