"""Pure checks of what Port's clients read: token claims, nodeUid, lenient bodies."""

from __future__ import annotations

import logging
import uuid

import jwt
import pytest
from pydantic import ValidationError

from switchyard.bridge.credentials import Actor
from switchyard.bridge.models import AckRequest, ClaimRequest, LogsRequest, NodeRunPatch
from switchyard.bridge.tokens import TokenSigner
from switchyard.schemas import node_uid
from tests.bridge.support import TOKEN_SECRET


@pytest.mark.parametrize(("actor", "machine"), [
    (Actor("ci", "machine", "ci-bot"), True),
    (Actor("ada", "user", "ada@example.com", "Admin"), False),
])  # fmt: skip
def test_tokens_say_whether_the_caller_is_a_machine(actor: Actor, machine: bool) -> None:
    signer = TokenSigner(TOKEN_SECRET, 3600)
    token = signer.issue(actor, now=1_000.0)
    # What Ocean does: decode without verifying.
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["isMachine"] is machine
    assert (claims["sub"], claims["iat"], claims["exp"]) == (actor.client_id, 1000, 4600)
    assert signer.client_id(signer.issue(actor)) == actor.client_id  # still verified by us


def test_node_uid_is_stable_uuid_shaped_and_distinct() -> None:
    uid = node_uid("deploy", "act")
    assert uid == node_uid("deploy", "act")
    assert str(uuid.UUID(uid)) == uid
    assert len({uid, node_uid("deploy", "other"), node_uid("deploy2", "act"),
                node_uid("de", "ployact")}) == 4  # fmt: skip


def test_claim_bounds_are_what_ocean_sends() -> None:
    body = ClaimRequest.model_validate({"installationId": "i", "limit": 300})
    assert (body.limit, body.visibilityTimeoutMs, body.exclude) == (300, 60_000, [])
    assert ClaimRequest.model_validate({"installationId": "i", "limit": 1000}).limit == 1000
    for bad in ({"limit": 0}, {"limit": 1001}, {"visibilityTimeoutMs": 999},
                {"visibilityTimeoutMs": 600_001}, {"exclude": "x"}):  # fmt: skip
        with pytest.raises(ValidationError):
            ClaimRequest.model_validate({"installationId": "i", **bad})


def test_unknown_fields_are_ignored_and_logged_known_ones_still_checked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="switchyard.bridge"):
        patch = NodeRunPatch.model_validate(
            {"status": "IN_PROGRESS", "reauthRequired": True, "statusLabel": {"text": "Running"}}
        )
        ClaimRequest.model_validate({"installationId": "i", "future": 1})
        AckRequest.model_validate({"nodeRunIdentifier": "wfnr_AAAAAAAAAAAAAAAA", "x": 1})
        LogsRequest.model_validate({"logs": [{"level": "INFO", "message": "m", "extra": 1}]})
    assert patch.statusLabel is not None
    assert patch.statusLabel.text == "Running"
    logged = " ".join(record.getMessage() for record in caplog.records)
    for field in ("reauthRequired", "future", "x", "extra"):
        assert field in logged
    assert "level" not in logged.replace("LogLine", "")  # the other spelling is known
    with pytest.raises(ValidationError, match="result is required"):
        NodeRunPatch.model_validate({"status": "COMPLETED", "other": 1})
    with pytest.raises(ValidationError):
        NodeRunPatch.model_validate({"statusLabel": {"variant": "success"}})
