"""Kafka names and typed I/O: the topic registry, topic creation, the producer."""
