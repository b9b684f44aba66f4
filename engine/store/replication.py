"""Replica acknowledgement of the engine's Redis writes before their offsets commit.

With ``redis_wait_replicas`` = N > 0, the inbox commits a batch's Kafka offsets only
once N replicas of every Redis node the batch wrote have acknowledged its writes: a
master that fails after that loses none of them, so an offset Kafka holds as done is
never one whose apply a failover forgot.

``WAIT`` counts the replicas that acknowledged the last write *of its own
connection*; a pooled client may have applied the batch on another connection, and a
connection that never wrote gets an immediate, meaningless answer. So each WAIT goes
right after a probe write (``INCR sy:repl:probe…``) on the same connection (one
pipeline): replication is one ordered stream per master, so a replica that has the
probe has every write the master made before it, the batch's among them (its reply
came back before the probe was sent).

On a Redis Cluster the node is the master of the slot the batch wrote: the probe key
carries the hash tag of the inbox partition (``slots.partition_tag``), the slot every
key of that partition's runs lives in (the partition-tagged layout,
``docs/cluster-layout.md``). The WAIT goes over a connection of its own to that node,
which must still be the one that took the writes: a slot that moved to another node
meanwhile (a failover) counts as not acknowledged, since the new master's replicas say
nothing about writes the old one may have lost.

See ``docs/scaling.md`` ("Failover without loss") for the window that remains.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from switchyard.engine.store import keys
from switchyard.engine.store.slots import partition_tag

log = logging.getLogger("switchyard.engine")

ATTEMPTS = 5  # WAITs of ``timeout_ms`` each before the process gives up


class ReplicasBehind(Exception):
    """Fewer replicas than required acknowledged a batch's writes, every attempt.

    Not retriable in-process: the offsets stay uncommitted and the process must be
    restarted, so the batches are redelivered (and applied again, idempotently by
    their stored offsets, on whatever master holds the slot then)."""

    retriable = False

    def __init__(self, message: str, *, node: str, acked: int, wanted: int) -> None:
        super().__init__(message)
        self.node = node
        self.acked = acked
        self.wanted = wanted


class ReplicaAcks:
    """Notes which Redis nodes batches wrote (:meth:`wrote`), then confirms their
    replicas have those writes (:meth:`confirm`) before the offsets are committed.

    ``client`` is the engine's store client (a :class:`RedisCluster` or one Redis).
    Lifecycle: :meth:`aclose` closes the connections it opened to cluster nodes."""

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        replicas: int,
        timeout_ms: int,
        *,
        attempts: int = ATTEMPTS,
    ) -> None:
        if replicas < 1 or timeout_ms < 1:
            raise ValueError(f"replicas and timeout_ms must be >= 1 (got {replicas}, {timeout_ms})")
        self.client = client
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self.attempts = attempts
        # The node that held the slot when the batch wrote (None: one Redis) → a probe
        # key of that slot: one WAIT per node covers every partition it holds.
        self._pending: dict[str | None, str] = {}
        self._direct: dict[str, aioredis.Redis] = {}

    def wrote(self, partitions: Iterable[int], partition_count: int) -> None:
        """Note that a batch of these inbox partitions has been applied."""
        if not isinstance(self.client, RedisCluster):
            self._pending.setdefault(None, keys.REPLICATION_PROBE)
            return
        for partition in partitions:
            probe = keys.replication_probe(partition_tag(partition, partition_count)[1:-1])
            owner = self.client.get_node_from_key(probe)
            # No owner (slot map refreshing): "" never matches, so it is unconfirmed.
            self._pending.setdefault("" if owner is None else owner.name, probe)

    async def confirm(self) -> None:
        """Return once every noted node's writes reached ``replicas`` replicas; raise
        :class:`ReplicasBehind` after ``attempts`` WAITs that got fewer. What is noted
        is taken at the call (before any await): batches noted later wait for the
        next confirm."""
        pending, self._pending = self._pending, {}
        await asyncio.gather(*(self._confirm(probe, node) for node, probe in pending.items()))

    async def _confirm(self, probe: str, node: str | None) -> None:
        acked, where = 0, node or "redis"
        for attempt in range(1, self.attempts + 1):
            try:
                acked = await self._wait(probe, node)
            except aioredis.RedisError as error:  # the master is away: try again
                log.warning("WAIT on %s failed (%r), attempt %d", where, error, attempt)
                continue
            if acked >= self.replicas:
                return
            log.warning("WAIT on %s: %d of %d replicas acknowledged within %d ms, attempt %d",
                        where, acked, self.replicas, self.timeout_ms, attempt)  # fmt: skip
        raise ReplicasBehind(
            f"{where}: {acked} of redis_wait_replicas={self.replicas} replicas acknowledged "
            f"the batch's writes in {self.attempts} WAITs of {self.timeout_ms} ms; its "
            f"offsets are not committed (a restart redelivers it)",
            node=where, acked=acked, wanted=self.replicas,
        )  # fmt: skip

    async def _wait(self, probe: str, node: str | None) -> int:
        target = self._connection(probe, node)
        async with target.pipeline(transaction=False) as pipe:
            pipe.incr(probe)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            _, acked = await pipe.execute()
        return int(acked)

    def _connection(self, probe: str, node: str | None) -> aioredis.Redis:
        if node is None:
            assert isinstance(self.client, aioredis.Redis)
            return self.client
        assert isinstance(self.client, RedisCluster)
        owner = _owner(self.client, probe)
        if owner.name != node:
            raise aioredis.RedisError(f"slot of {probe} moved from {node} to {owner.name}")
        if node not in self._direct:
            self._direct[node] = _direct_client(owner)
        return self._direct[node]

    async def aclose(self) -> None:
        direct, self._direct = self._direct, {}
        for client in direct.values():
            await client.aclose()


def _owner(cluster: RedisCluster, key: str) -> ClusterNode:
    node = cluster.get_node_from_key(key)
    if node is None:  # the slot map is being refreshed
        raise aioredis.RedisError(f"no node holds the slot of {key} now")
    return node


def _direct_client(node: ClusterNode) -> aioredis.Redis:
    """A plain client of one cluster node, with the cluster client's connection options
    (TLS, AUTH): WAIT and its probe must share one connection to that node."""
    pool = aioredis.ConnectionPool(
        connection_class=node.connection_class, max_connections=4, **node.connection_kwargs
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool
