"""The benchmark workflows, in Port's JSON, and the ids the observer needs from them.

``chain``: SELF_SERVE_TRIGGER → CONDITION → KAFKA → KAFKA, inputs templated into the
payloads. ``webhook``: trigger → synchronous WEBHOOK. ``claim``: trigger →
INTEGRATION_ACTION. ``hold`` is ``chain`` under another identifier that no worker
serves, with an hour's deadline on its KAFKA nodes, so its runs stay in flight, each
with an armed timer (the memory and pending-timers measurement). ``seq``: trigger →
N KAFKA steps one after another (the per-step overhead, one run at a time).
"""

from __future__ import annotations

from typing import Any

WORKLOADS = ("chain", "webhook", "claim", "seq")
INSTALLATION = "bench-installation"

_TRIGGER: dict[str, Any] = {
    "identifier": "trigger",
    "config": {
        "type": "SELF_SERVE_TRIGGER",
        "userInputs": {
            "properties": {"service": {"type": "string"}, "n": {"type": "number"}},
            "required": ["service", "n"],
        },
    },
}


def chain(identifier: str = "bench-chain") -> dict[str, Any]:
    return {
        "identifier": identifier,
        "nodes": [
            _TRIGGER,
            {"identifier": "check", "config": {"type": "CONDITION", "outlets": [
                {"identifier": "go", "expression": ".outputs.trigger.n >= 0"}]}},
            {"identifier": "first", "config": {"type": "KAFKA", "payload": {
                "service": "{{ .outputs.trigger.service }}", "n": "{{ .outputs.trigger.n }}"}}},
            {"identifier": "second", "config": {"type": "KAFKA", "payload": {
                "service": "{{ .outputs.trigger.service }}",
                "previous": "{{ .outputs.first.ok }}"}}},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "check"},
            {"sourceIdentifier": "check", "targetIdentifier": "first",
             "sourceOutletIdentifier": "go"},
            {"sourceIdentifier": "first", "targetIdentifier": "second"},
        ],
    }  # fmt: skip


def hold(identifier: str = "bench-hold") -> dict[str, Any]:
    workflow = chain(identifier)
    for node in workflow["nodes"]:
        if node["config"]["type"] == "KAFKA":
            node["config"]["timeoutSeconds"] = 3600
    return workflow


def webhook(url: str, identifier: str = "bench-webhook") -> dict[str, Any]:
    return {
        "identifier": identifier,
        "nodes": [
            _TRIGGER,
            {"identifier": "call", "config": {
                "type": "WEBHOOK", "url": url, "method": "POST", "synchronized": True,
                "body": {"service": "{{ .outputs.trigger.service }}",
                         "n": "{{ .outputs.trigger.n }}"}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "call"}],
    }  # fmt: skip


def claim(identifier: str = "bench-claim") -> dict[str, Any]:
    return {
        "identifier": identifier,
        "nodes": [
            _TRIGGER,
            {"identifier": "act", "config": {
                "type": "INTEGRATION_ACTION", "installationId": INSTALLATION,
                "integrationProvider": "bench", "integrationInvocationType": "noop",
                "integrationActionExecutionProperties": {
                    "service": "{{ .outputs.trigger.service }}", "n": "{{ .outputs.trigger.n }}"},
            }},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "act"}],
    }  # fmt: skip


SEQ_STEPS = 10


def seq_step(k: int) -> str:
    return f"step{k}"


def seq(steps: int = SEQ_STEPS, identifier: str = "bench-seq") -> dict[str, Any]:
    """trigger → step1 → … → stepN, each a KAFKA node with a small templated payload."""
    nodes: list[dict[str, Any]] = [_TRIGGER]
    connections = []
    previous = "trigger"
    for k in range(1, steps + 1):
        nodes.append({"identifier": seq_step(k), "config": {"type": "KAFKA", "payload": {
            "service": "{{ .outputs.trigger.service }}", "step": k}}})  # fmt: skip
        connections.append({"sourceIdentifier": previous, "targetIdentifier": seq_step(k)})
        previous = seq_step(k)
    return {"identifier": identifier, "nodes": nodes, "connections": connections}


# Node runs per completed run (trigger and CONDITION count: each is a node run).
NODE_RUNS = {"chain": 4, "webhook": 2, "claim": 2, "seq": SEQ_STEPS + 1}
# The KAFKA → KAFKA step whose engine overhead is measured (chain only).
TRANSITION = ("first", "second")
