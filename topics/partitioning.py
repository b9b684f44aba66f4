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

from aiokafka.partitioner import murmur2


def partition_of(key: str | bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``, as Kafka's Java client picks it
    for a keyed record: ``toPositive(murmur2(key)) % partitions``."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1 (got {partitions})")
    raw = key.encode() if isinstance(key, str) else key
    hashed: int = murmur2(raw)  # aiokafka's port of the Java client's murmur2
    return (hashed & 0x7FFFFFFF) % partitions
