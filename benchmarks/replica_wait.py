"""What ``redis_wait_replicas`` costs a commit: the probe INCR + WAIT pipeline.

    python -m benchmarks.replica_wait [--commits 2000]

Starts a private master and replica (``tests/helpers_cluster.redis_pair``, on ports
the OS gives; nothing shared is touched) and times, one at a time, a bare INCR round
trip, then :meth:`ReplicaAcks.confirm` (the probe INCR and ``WAIT 1``, what each
inbox commit adds with the setting at 1). Prints microseconds per call; a figure,
never a pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis.asyncio as aioredis

from switchyard.engine.store.replication import ReplicaAcks
from tests.helpers_cluster import RedisServer, redis_pair


async def _measure(master: RedisServer, commits: int) -> None:
    client = aioredis.Redis.from_url(master.url)
    acks = ReplicaAcks(client, replicas=1, timeout_ms=1000)
    try:
        started = time.perf_counter()
        for _ in range(commits):
            await client.incr("sy:bench:incr")
        bare = (time.perf_counter() - started) / commits * 1e6
        started = time.perf_counter()
        for _ in range(commits):
            acks.wrote([0], 12)
            await acks.confirm()
        waited = (time.perf_counter() - started) / commits * 1e6
    finally:
        await acks.aclose()
        await client.aclose()
    print(f"INCR round trip:             {bare:7.0f} us (mean of {commits})")
    print(f"probe INCR + WAIT 1 (commit): {waited:7.0f} us (mean of {commits})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    args = parser.parse_args()
    with redis_pair() as (master, _):
        asyncio.run(_measure(master, args.commits))


if __name__ == "__main__":
    main()
