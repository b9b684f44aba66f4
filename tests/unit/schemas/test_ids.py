from __future__ import annotations

import os
import re

import pytest
from pydantic import TypeAdapter, ValidationError

from switchyard.schemas import (
    Identifier,
    derived_run_id,
    is_node_run_id,
    is_run_id,
    new_run_id,
    node_run_id,
)
from switchyard.schemas.ids import _base62

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


def _base62_digit_by_digit(number: int) -> str:
    """The ids' first encoding, one divmod by 62 a digit: the reference the table-driven
    one must match, or stored node-run ids would stop matching the ones recomputed."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    chars = []
    for _ in range(16):
        number, digit = divmod(number, 62)
        chars.append(alphabet[digit])
    return "".join(reversed(chars))


def test_ids_are_the_ones_earlier_releases_derived() -> None:
    assert node_run_id(RUN, "deploy", 1) == "wfnr_RvuMjConsaYmWIpe"
    assert node_run_id(RUN, "deploy", 2) == "wfnr_oq6AMSjf2cl3emSx"
    assert derived_run_id("a", "b") == "wfr_08zlztaTzWr2aRxp"
    assert new_run_id(lambda n: b"\x07" * n) == "wfr_Ov2l6AkSp3WsPxY7"
    assert new_run_id(lambda n: b"\xff" * n) == "wfr_M5Tflk9n8mt7Fhc7"
    assert new_run_id(lambda n: b"\x00" * n) == "wfr_0000000000000000"


def test_base62_matches_the_digit_by_digit_encoding() -> None:
    space = 62**16
    edges = [0, 1, 61, 62, 62**2 - 1, 62**2, 62**4 - 1, 62**4, 62**8 - 1, 62**8, space - 1]
    randoms = [int.from_bytes(os.urandom(16), "big") % space for _ in range(2000)]
    for number in edges + randoms:
        assert _base62(number) == _base62_digit_by_digit(number), number
