"""Per-call costs of ``{{ jq }}`` templates: fast path, sandbox, compile miss, render.

Run: ``.venv/bin/python benchmarks/templates_bench.py`` (figures are printed, never
asserted). Each figure is the best of 5 rounds; a round times N calls.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import orjson

from switchyard.engine.templates import JqTemplates, TemplateLimits, mask_secrets

ROUNDS = 5


def typical_context(padding: int = 0) -> dict[str, Any]:
    """A run a few nodes in: a trigger, a build webhook's response, secrets, metadata."""
    return {
        "outputs": {
            "trigger": {"environment": "staging", "service": "payments", "ref": "main"},
            "build": {
                "id": 4211,
                "status": "SUCCESS",
                "artifacts": [{"name": f"layer-{i}", "size": i * 1000} for i in range(10)],
                "log": "x" * padding,
            },
            "deploy-prod": {"url": "https://deploy.example.test/runs/77", "ok": True},
        },
        "secrets": {"deploy-token": "s3cr3t-token-value", "webhook": "hook-secret-42"},
        "workflow": {"identifier": "deploy", "version": 3},
        "workflowRun": {
            "identifier": "wfr_AbCdEfGh12345678",
            "createdAt": "2026-01-28T10:00:00.000Z",
            "trigger": {"identifier": "trigger", "by": {"email": "dev@example.test"}},
        },
        "workflowNodeRun": {"identifier": "wfnr_1", "createdAt": "2026-01-28T10:00:01.000Z"},
    }


# Ten fields, as a webhook node's config might hold: 6 fast-path, 4 sandbox, text around some.
TYPICAL_CONFIG = {
    "type": "WEBHOOK",
    "url": '{{ .outputs["deploy-prod"].url }}/promote',
    "method": "POST",
    "headers": {
        "Authorization": 'Bearer {{ .secrets["deploy-token"] }}',
        "X-Run": "{{ .workflowRun.identifier }}",
    },
    "body": {
        "service": "{{ .outputs.trigger.service }}",
        "build": "{{ .outputs.build.id }}",
        "environment": "{{ .outputs.trigger.environment | ascii_upcase }}",
        "artifacts": "{{ [.outputs.build.artifacts[].name] }}",
        "size": "{{ .outputs.build.artifacts | map(.size) | add }}",
        "by": "{{ .workflowRun.trigger.by.email }}",
        "message": "deploy {{ .outputs.trigger.ref }} at {{ now | todate | .[:10] }}",
    },
}


def per_call(action: Callable[[], object], calls: int) -> float:
    """Best-of-rounds microseconds per call."""
    action()
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(calls):
            action()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def fresh(template: str) -> Callable[[], str]:
    """A new expression text each call, so each one misses every cache."""
    counter = itertools.count()
    return lambda: template.format(next(counter))


def report(label: str, micros: float) -> None:
    print(f"{label:<58} {micros:>9.1f} µs")


def main() -> None:
    context = typical_context()
    large = typical_context(padding=100_000)
    print(f"context: {len(orjson.dumps(context))} bytes (large: {len(orjson.dumps(large))})")
    with JqTemplates(TemplateLimits()) as templates:
        report(
            "fast path hit: .outputs.build.id",
            per_call(lambda: templates.evaluate(".outputs.build.id", context), 5000),
        )
        report(
            "fast path hit, condition: .outputs.build.status == ...",
            per_call(
                lambda: templates.evaluate('.outputs.build.status == "SUCCESS"', context), 5000
            ),
        )
        report(
            "sandbox round trip alone: 1 + 1 on {}",
            per_call(lambda: templates.evaluate("1 + 1", {}), 3000),
        )
        report(
            "sandbox hit: .outputs.build.id | tostring",
            per_call(lambda: templates.evaluate(".outputs.build.id | tostring", context), 3000),
        )
        report(
            "sandbox hit: [.outputs.build.artifacts[].name]",
            per_call(
                lambda: templates.evaluate("[.outputs.build.artifacts[].name]", context), 3000
            ),
        )
        next_fast = fresh(".outputs.build.k{}")
        report(
            "compile miss, fast path (in process)",
            per_call(lambda: templates.evaluate(next_fast(), context), 300),
        )
        next_slow = fresh(".outputs.build.k{} | tostring")
        report(
            "compile miss, sandbox (compiled in the child)",
            per_call(lambda: templates.evaluate(next_slow(), context), 300),
        )
        report(
            "render, typical 10-field config (6 fast, 4 sandbox)",
            per_call(lambda: templates.render(TYPICAL_CONFIG, context), 1000),
        )
        plain = {"type": "WEBHOOK", "method": "POST", "headers": {"Accept": "application/json"}}
        report(
            "render, config without templates",
            per_call(lambda: templates.render(plain, context), 20000),
        )
        report(
            "fast path hit, 100 KB context",
            per_call(lambda: templates.evaluate(".outputs.build.id", large), 300),
        )
        report(
            "sandbox hit, 100 KB context",
            per_call(lambda: templates.evaluate(".outputs.build.id | tostring", large), 300),
        )
        rendered = templates.render(TYPICAL_CONFIG, context)
        secrets = context["secrets"]
        report(
            "mask_secrets on the rendered config (2 secrets)",
            per_call(lambda: mask_secrets(rendered, secrets), 5000),
        )


if __name__ == "__main__":
    main()
