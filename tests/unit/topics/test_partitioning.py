"""partition_of is Kafka's Java default partitioner for keyed records."""

from __future__ import annotations

import pytest

from switchyard.topics.partitioning import partition_of


# Kafka's own test vectors for Utils.murmur2 (clients/.../common/utils/UtilsTest.java),
# as signed Java ints; the partition is toPositive(hash) % partitions.
@pytest.mark.parametrize(
    ("key", "java_hash"),
    [
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ("abc", 479470107),
    ],
)
def test_partition_of_follows_the_java_client(key: str, java_hash: int) -> None:
    positive = java_hash & 0x7FFFFFFF
    for partitions in (1, 3, 12, 64):
        assert partition_of(key, partitions) == positive % partitions
        assert partition_of(key.encode(), partitions) == positive % partitions


def test_a_run_id_always_lands_in_range() -> None:
    assert {partition_of(f"wfr_{n:016d}", 12) for n in range(500)} == set(range(12))


def test_no_partitions_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partition_of("wfr_x", 0)
