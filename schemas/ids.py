"""Identifiers: run and node-run ids, and the workflow/node identifier type.

Run ids are random (the bridge passes its randomness source in); node-run ids are a
hash of ``(run id, node, attempt)`` so that replaying a run's events yields the same
ids, and a consumer that sees a request twice can tell.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_LENGTH = 16
_ID_SPACE = len(_ALPHABET) ** _ID_LENGTH

RUN_ID_PATTERN = r"^wfr_[A-Za-z0-9]{16}$"
NODE_RUN_ID_PATTERN = r"^wfnr_[A-Za-z0-9]{16}$"

RunId = Annotated[str, StringConstraints(pattern=RUN_ID_PATTERN)]
"""``wfr_`` and 16 letters or digits."""

NodeRunId = Annotated[str, StringConstraints(pattern=NODE_RUN_ID_PATTERN)]
"""``wfnr_`` and 16 letters or digits."""

# Port's pattern is ^[\p{L}0-9@_:-]+$; Python's re has no \p{L}, and [^\W\d_] is
# exactly "a Unicode letter" (a word character that is neither a digit nor "_").
_IDENTIFIER_RE = re.compile(r"^(?:[^\W\d_]|[0-9@_:-])+$")
IDENTIFIER_MAX_LENGTH = 60


def check_identifier(value: str) -> str:
    """Return ``value`` if it is a valid workflow or node identifier, else raise ValueError."""
    if not value or len(value) > IDENTIFIER_MAX_LENGTH or not _IDENTIFIER_RE.match(value):
        raise ValueError(
            f"must be 1 to {IDENTIFIER_MAX_LENGTH} letters, digits, '@', '_', ':' or '-'"
            f" (got {value!r})"
        )
    return value


Identifier = Annotated[str, AfterValidator(check_identifier)]
"""A workflow, node or outlet identifier: ≤ 60 letters, digits, ``@ _ : -``."""


def is_run_id(value: str) -> bool:
    return re.match(RUN_ID_PATTERN, value) is not None


def is_node_run_id(value: str) -> bool:
    return re.match(NODE_RUN_ID_PATTERN, value) is not None


# Two base-62 digits at a time: a table of the 62**2 pairs and four divisions by
# 62**4 and 62**2 instead of sixteen divmods by 62 (0.5 µs for 1.6 µs an id; the
# engine makes one per node run it starts).
_PAIR = len(_ALPHABET) ** 2
_PAIRS = tuple(high + low for high in _ALPHABET for low in _ALPHABET)


def _base62(number: int) -> str:
    """``number`` (below 62**16) as 16 base-62 digits, the most significant first."""
    pairs, pair = _PAIRS, _PAIR
    high, low = divmod(number, pair**4)
    a, b = divmod(high, pair**2)
    c, d = divmod(low, pair**2)
    return (
        pairs[a // pair] + pairs[a % pair] + pairs[b // pair] + pairs[b % pair]
        + pairs[c // pair] + pairs[c % pair] + pairs[d // pair] + pairs[d % pair]
    )  # fmt: skip


def new_run_id(rand: Callable[[int], bytes]) -> RunId:
    """A fresh run id from ``rand(n) -> n random bytes`` (``os.urandom`` in production).

    128 random bits reduced onto 62**16 values: the bias is below 2**-30.
    """
    return "wfr_" + _base62(int.from_bytes(rand(16), "big") % _ID_SPACE)


def derived_run_id(*parts: str) -> RunId:
    """A run id that is a function of ``parts`` (an entity event and a workflow, a
    schedule's tick): whoever derives it twice starts the same run, which the engine
    creates once."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()
    return "wfr_" + _base62(int.from_bytes(digest, "big") % _ID_SPACE)


def node_run_id(run_id: str, node_identifier: str, attempt: int = 1) -> NodeRunId:
    """The id of attempt ``attempt`` of node ``node_identifier`` in run ``run_id``.

    Deterministic (blake2b), so a replayed history produces the same node-run ids.
    """
    digest = hashlib.blake2b(
        f"{run_id}\x1f{node_identifier}\x1f{attempt}".encode(), digest_size=16
    ).digest()
    return "wfnr_" + _base62(int.from_bytes(digest, "big") % _ID_SPACE)


def node_uid(workflow_identifier: str, node_identifier: str) -> str:
    """A node's ``nodeUid``: the same for that node of that workflow in every version.

    Port's workers key their per-node buffers on it and send saturated ones back as
    claim ``exclude``; a hash (not a stored random id) needs no state and can't drift.
    """
    digest = hashlib.blake2b(
        f"{workflow_identifier}\x00{node_identifier}".encode(), digest_size=16
    ).digest()
    return str(uuid.UUID(bytes=digest))
