"""p50/p99 latency of ``POST /v1/workflows/{id}/runs`` (until the created run is
returned) and of ``GET /v1/workflows/runs/{id}``, against a running stack.

    switchyard stack up && python benchmarks/api_latency.py [--runs 500] [--concurrency 1]

Prints figures; asserts nothing. Uses the dev machine credential `stack up` wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx

from switchyard.cli.stack.full import local_settings
from switchyard.schemas.settings import Settings

WORKFLOW = {
    "identifier": "bench-api-latency",
    "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
            "properties": {"n": {"type": "number"}}, "required": ["n"]}}},
        {"identifier": "work", "config": {"type": "KAFKA",
                                          "payload": {"n": "{{ .outputs.trigger.n }}"}}},
    ],
    "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
}  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name:<34} n={len(ms):<5} p50={percentile(ms, 0.5):7.2f} ms  "
            f"p99={percentile(ms, 0.99):7.2f} ms  max={max(ms):7.2f} ms  "
            f"mean={statistics.fmean(ms):7.2f} ms")  # fmt: skip


def machine_secret(settings: Settings) -> str:
    saved = json.loads(Path(settings.home / "dev-credentials.json").read_text())
    return str(next(c["client_secret"] for c in saved if c["client_id"] == "dev-machine"))


async def main(runs: int, concurrency: int) -> None:
    settings = local_settings(Settings())
    secret = machine_secret(settings)
    base = f"http://{settings.bridge_host}:{settings.bridge_port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        token = (
            await client.post(
                "/v1/auth/access_token", json={"clientId": "dev-machine", "clientSecret": secret}
            )
        ).json()
        client.headers["Authorization"] = f"Bearer {token['accessToken']}"
        if (await client.post("/v1/workflows", json=WORKFLOW)).status_code == 409:
            await client.put(f"/v1/workflows/{WORKFLOW['identifier']}", json=WORKFLOW)
        posts: list[float] = []
        gets: list[float] = []
        run_ids: list[str] = []
        slots = asyncio.Semaphore(concurrency)

        async def trigger(n: int) -> None:
            async with slots:
                started = time.perf_counter()
                response = await client.post(
                    f"/v1/workflows/{WORKFLOW['identifier']}/runs", json={"inputs": {"n": n}}
                )
                posts.append(time.perf_counter() - started)
                if response.status_code != 201:
                    raise SystemExit(f"POST answered {response.status_code}: {response.text}")
                run_ids.append(response.json()["workflowRun"]["identifier"])

        for warmup in range(20):
            await trigger(warmup)
        posts.clear()
        await asyncio.gather(*(trigger(n) for n in range(runs)))

        async def get(run_id: str) -> None:
            async with slots:
                started = time.perf_counter()
                response = await client.get(f"/v1/workflows/runs/{run_id}")
                gets.append(time.perf_counter() - started)
                response.raise_for_status()

        await asyncio.gather(*(get(run_id) for run_id in run_ids))
    print(f"concurrency {concurrency}, {runs} runs, bridge at {base}")
    print(summary("POST /v1/workflows/{id}/runs (201)", posts))
    print(summary("GET /v1/workflows/runs/{id}", gets))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.concurrency))
