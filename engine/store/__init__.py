"""The Redis store: run state, logs, indexes, claims; every key documented in keys.py."""
