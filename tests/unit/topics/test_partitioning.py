"""partition_of is Kafka's Java default partitioner for keyed records."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import murmur2

from switchyard.topics.partitioning import _positive_hash, partition_of


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


def test_a_run_ids_hash_is_computed_once_for_its_records() -> None:
    key = "wfr_CacheMe000000001"
    first = partition_of(key, 12)
    hits = _positive_hash.cache_info().hits
    assert [partition_of(key, n) for n in (12, 3)] == [first, partition_of(key.encode(), 3)]
    assert _positive_hash.cache_info().hits == hits + 2


def test_the_cache_gives_each_key_its_own_hash() -> None:
    # A str and its UTF-8 bytes hash alike; other bytes (Latin-1 "é") don't; asked
    # twice, in any order, each key gets what murmur2 says of it.
    keys: list[str | bytes] = ["wfr_é", "wfr_é".encode(), b"wfr_\xe9", "21", b"21"]
    for _ in range(2):
        for key in keys:
            raw = key.encode() if isinstance(key, str) else key
            assert partition_of(key, 1_000_003) == (murmur2(raw) & 0x7FFFFFFF) % 1_000_003
    assert partition_of("wfr_é", 1_000_003) != partition_of(b"wfr_\xe9", 1_000_003)
