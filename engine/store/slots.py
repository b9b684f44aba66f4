"""The Redis Cluster hash tag of each inbox partition: where a partition's runs live.

The cluster layout (``docs/cluster-layout.md``) keeps every key an apply step writes
for the runs of one inbox partition in one hash slot, so that one script call per
partition of a batch stays atomic on a Redis Cluster. The tag of partition ``i`` is
chosen so that its slot falls in the ``i``-th of ``partitions`` equal slices of the
16,384 slots: ``redis-cli --cluster create`` gives each master a contiguous range, so
the partitions spread over the masters as evenly as the count allows. The naive
``{p<i>}`` does not: 12 partitions land 6, 3 and 3 on three masters.

The choice is a pure function of the partition and the partition count, which a store
records (``sy:meta``) and never changes: a run's partition, hence its keys' names, is
fixed for its life.
"""

from __future__ import annotations

from functools import lru_cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

# Far more than any search needs: a slice of 16,384 / 1,024 partitions holds 16 slots,
# which a uniform hash hits within a few hundred tries.
_TRIES = 1_000_000


def slot_range(partition: int, partitions: int) -> range:
    """The slots of ``partition``'s slice: the ``partition``-th of ``partitions``."""
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} is not one of {partitions}")
    if partitions > REDIS_CLUSTER_HASH_SLOTS:
        raise ValueError(f"at most {REDIS_CLUSTER_HASH_SLOTS} partitions (got {partitions})")
    start = partition * REDIS_CLUSTER_HASH_SLOTS // partitions
    end = (partition + 1) * REDIS_CLUSTER_HASH_SLOTS // partitions
    return range(start, end)


@lru_cache(maxsize=4096)
def partition_tag(partition: int, partitions: int) -> str:
    """The hash tag (with its braces) of ``partition``'s keys: ``{p3.41}``, the first
    ``p<partition>.<n>`` whose slot is in the partition's slice."""
    wanted = slot_range(partition, partitions)
    for n in range(_TRIES):
        tag = f"p{partition}.{n}"
        if key_slot(tag.encode()) in wanted:
            return "{" + tag + "}"
    raise AssertionError(f"no tag found for partition {partition} of {partitions}")


def slot_of_partition(partition: int, partitions: int) -> int:
    """The hash slot every key of ``partition`` hashes to."""
    return key_slot(partition_tag(partition, partitions).encode())
