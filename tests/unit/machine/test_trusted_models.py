"""The models the machine builds without validation (schemas.trusted) are the ones
validation would build: equal, of the same types, and the same bytes on the wire.

Every history under histories/ is replayed on a clock with sub-millisecond readings
(validation cuts instants to milliseconds: a model built from a raw reading would
differ), and each accepted decision is planned twice: with the machine's effects and
with every model in them rebuilt through validation from its field values. The
outbox messages and Redis commands must match byte for byte.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from switchyard.engine.machine import Decision
from switchyard.engine.store.plan import plan_decision
from switchyard.engine.store.slots import partition_tag
from switchyard.schemas import NodeRunLog, decode_inbox, encode, parse_workflow
from switchyard.schemas.settings import Settings
from switchyard.schemas.trusted import trusted
from switchyard.topics.registry import TopicRegistry

from .conftest import START, Harness
from .test_histories import HISTORIES, wire_event


def _validated(value: Any) -> Any:
    """``value`` with each model in it built again, validated, from its field values."""
    if isinstance(value, BaseModel):
        fields = {name: _validated(getattr(value, name)) for name in type(value).model_fields}
        return type(value)(**fields)
    if isinstance(value, list):
        return [_validated(item) for item in value]
    return value


def _same_models(built: Any, reference: Any) -> None:
    """Equal, field by field of the same types, and the same JSON, all the way down."""
    assert type(built) is type(reference)
    if isinstance(built, BaseModel):
        assert built == reference
        assert encode(built) == encode(reference)
        for name in type(built).model_fields:
            _same_models(getattr(built, name), getattr(reference, name))
    elif isinstance(built, list):
        assert len(built) == len(reference)
        for item, other in zip(built, reference, strict=True):
            _same_models(item, other)
    else:
        assert built == reference


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_the_machines_models_are_what_validation_builds(path: Path) -> None:
    history = orjson.loads(path.read_bytes())
    workflow = parse_workflow(history["workflow"])
    harness = Harness(workflow, history.get("secrets"))
    registry = TopicRegistry.from_settings(Settings())
    planned = 0
    for index, raw in enumerate(history["events"]):
        harness.now += timedelta(microseconds=1733)  # a clock between milliseconds
        old = harness.state
        decision = harness.send(decode_inbox(wire_event(raw, index)))
        if not decision.accepted:
            continue
        reference = Decision(state=decision.state, effects=_validated(list(decision.effects)))
        _same_models(list(decision.effects), list(reference.effects))
        ours = plan_decision(
            old,
            decision,
            offset=index,
            registry=registry,
            tag=partition_tag(0, 12),
            workflow=workflow,
        )
        theirs = plan_decision(
            old,
            reference,
            offset=index,
            registry=registry,
            tag=partition_tag(0, 12),
            workflow=workflow,
        )
        assert ours.outbox == theirs.outbox
        assert ours.commands == theirs.commands
        planned += 1
    assert planned or not any(code is None for code in history["expect"]["rejections"])


def test_trusted_fills_defaults_and_makes_per_instance_ones_afresh() -> None:
    first = trusted(NodeRunLog, log_level="INFO", created_at=START)
    second = trusted(NodeRunLog, log_level="INFO", created_at=START)
    assert first == NodeRunLog(log_level="INFO", created_at=START)
    assert first.tags is not second.tags
    assert first.model_fields_set == {"log_level", "created_at"}


class _SharedList(BaseModel):
    items: list[str] = []  # validation copies it per instance; trusted() could not


def test_trusted_refuses_a_model_whose_default_would_be_shared() -> None:
    with pytest.raises(TypeError, match=r"_SharedList.items: a mutable default"):
        trusted(_SharedList)


def test_trusted_refuses_unknown_and_missing_fields() -> None:
    with pytest.raises(TypeError, match="NodeRunLog: no field 'level'"):
        trusted(NodeRunLog, level="INFO", log_level="INFO", created_at=START)
    with pytest.raises(TypeError, match="NodeRunLog: created_at is required"):
        trusted(NodeRunLog, log_level="INFO")
