"""The hash tag of each inbox partition: one slot per partition, spread over the slots."""

from __future__ import annotations

import pytest
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from switchyard.engine.store.slots import partition_tag, slot_of_partition, slot_range


def _masters_of(partitions: int, masters: int) -> list[int]:
    """How many partitions each of ``masters`` contiguous equal slot ranges holds (as
    ``redis-cli --cluster create`` divides them)."""
    counts = [0] * masters
    for p in range(partitions):
        counts[slot_of_partition(p, partitions) * masters // REDIS_CLUSTER_HASH_SLOTS] += 1
    return counts


@pytest.mark.parametrize("partitions", [1, 3, 12, 48, 1024])
def test_each_partitions_slot_is_in_its_own_slice(partitions: int) -> None:
    slots = [slot_of_partition(p, partitions) for p in range(partitions)]
    assert all(s in slot_range(p, partitions) for p, s in enumerate(slots))
    assert len(set(slots)) == partitions


def test_a_key_with_the_tag_hashes_to_the_partitions_slot() -> None:
    tag = partition_tag(5, 12)
    assert tag.startswith("{p5.")
    assert tag.endswith("}")
    for key in (f"sy:run:{tag}:wfr_abc", f"sy:runs:all:{tag}", f"sy:timers:{tag}"):
        assert key_slot(key.encode()) == slot_of_partition(5, 12)


def test_twelve_partitions_spread_evenly_over_three_masters() -> None:
    # The naive {p0}..{p11} land 6/3/3: the reason the tags are searched for.
    naive = [0, 0, 0]
    for p in range(12):
        naive[key_slot(f"{{p{p}}}".encode()) * 3 // REDIS_CLUSTER_HASH_SLOTS] += 1
    assert sorted(naive) != [4, 4, 4]
    assert _masters_of(12, 3) == [4, 4, 4]
    assert _masters_of(12, 4) == [3, 3, 3, 3]


def test_the_tag_is_a_pure_function_of_partition_and_count() -> None:
    partition_tag.cache_clear()
    first = [partition_tag(p, 12) for p in range(12)]
    partition_tag.cache_clear()
    assert [partition_tag(p, 12) for p in range(12)] == first


@pytest.mark.parametrize(("partition", "partitions"), [(-1, 12), (12, 12), (0, 0), (0, 16385)])
def test_a_partition_outside_the_count_is_refused(partition: int, partitions: int) -> None:
    with pytest.raises(ValueError, match="partition"):
        partition_tag(partition, partitions)
