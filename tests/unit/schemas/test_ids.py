from __future__ import annotations

import os
import re

import pytest
from pydantic import TypeAdapter, ValidationError

from switchyard.schemas import Identifier, is_node_run_id, is_run_id, new_run_id, node_run_id

RUN = "wfr_AbCdEfGh12345678"


def test_new_run_id_has_the_api_pattern_and_uses_the_given_randomness() -> None:
    assert re.fullmatch(r"wfr_[A-Za-z0-9]{16}", new_run_id(os.urandom))
    assert new_run_id(lambda n: b"\x07" * n) == new_run_id(lambda n: b"\x07" * n)
    assert new_run_id(lambda n: b"\x07" * n) != new_run_id(lambda n: b"\x08" * n)
    assert is_run_id(new_run_id(os.urandom))


def test_node_run_id_is_deterministic_and_distinct_per_node_and_attempt() -> None:
    first = node_run_id(RUN, "deploy", 1)
    assert first == node_run_id(RUN, "deploy", 1)
    assert is_node_run_id(first)
    others = {node_run_id(RUN, "deploy", 2), node_run_id(RUN, "notify", 1)}
    others.add(node_run_id("wfr_AbCdEfGh12345679", "deploy", 1))
    assert first not in others
    assert len(others) == 3


@pytest.mark.parametrize("value", ["deploy", "my-node", "a@b:c_d", "ümlaut", "x" * 60])
def test_identifier_accepts_port_identifiers(value: str) -> None:
    assert TypeAdapter(Identifier).validate_python(value) == value


@pytest.mark.parametrize("value", ["", "x" * 61, "has space", "dot.ted", "slash/"])
def test_identifier_refuses_others(value: str) -> None:
    with pytest.raises(ValidationError, match="letters, digits"):
        TypeAdapter(Identifier).validate_python(value)
