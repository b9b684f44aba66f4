"""The worker SDK's public surface: changing it is a decision, made here."""

from __future__ import annotations

import switchyard.consumers as sdk


def test_public_surface() -> None:
    assert sorted(sdk.__all__) == [
        "ApiError",
        "ClaimWorker",
        "ClaimedNodeRun",
        "Handler",
        "HandlerEnvironment",
        "HandlerRun",
        "HttpReporter",
        "KafkaReporter",
        "KafkaWorker",
        "NodeLogger",
        "Outcome",
        "Reporter",
        "RunsClient",
        "Triggered",
        "WorkContext",
    ]
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None, name
