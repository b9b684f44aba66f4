"""The engine: the pure per-run state machine, templates, the Redis store, the processor."""
