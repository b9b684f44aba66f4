"""Consumers of node-run requests: the worker SDK and the built-in executors."""
