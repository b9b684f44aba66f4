"""What every Switchyard process shares to be operated: the ops endpoints (metrics,
health, readiness), trace context carried across Kafka hops, and structured logs.

It sits under ``topics/`` because, like the producer, it is used by every process
(engine, executors, bridge, SDK workers) and imports nothing of ours but schemas.
"""
