"""Which partition a key belongs to: Kafka's Java default, computed by us.

Every event of a run must meet in one inbox partition, or the engine would compare
offsets of two partitions. Client libraries disagree on where a key goes:
the Java client (and aiokafka) hash it with murmur2, librdkafka (confluent-kafka,
kcat, the Go, .NET and Node clients built on it) defaults to CRC32
(``consistent_random``). So the partition is never left to a library: our producers
set it explicitly from this function, and the engine moves a record that landed
anywhere else (see ``engine/processor.py``).
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

# Keys whose hash is kept: a run's id is hashed for each of its inbox records and
# each message its steps publish (about five per event), and aiokafka's murmur2 is
# pure Python (~5 µs for a run id). Enough for the runs of many batches in flight.
HASHES_KEPT = 16384


def partition_of(key: str | bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``, as Kafka's Java client picks it
    for a keyed record: ``toPositive(murmur2(key)) % partitions``."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1 (got {partitions})")
    return _positive_hash(key) % partitions


@lru_cache(maxsize=HASHES_KEPT)
def _positive_hash(key: str | bytes) -> int:
    # A str key and its UTF-8 bytes are cached apart (they differ as dict keys) and
    # hash alike, so the cache can't give one the other's partition.
    raw = key.encode() if isinstance(key, str) else key
    hashed: int = murmur2(raw)  # aiokafka's port of the Java client's murmur2
    return hashed & 0x7FFFFFFF
