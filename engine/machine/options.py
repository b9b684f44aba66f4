"""What the server's configuration tells the machine: passed in with every event, so
``decide`` stays pure (the processor builds it from the settings, and from state the
server keeps in Redis, once per batch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MachineOptions:
    """``default_timeout_s``: the deadline of waiting action nodes that set no
    ``timeoutSeconds`` (``SWITCHYARD_DEFAULT_NODE_TIMEOUT_S``)."""

    default_timeout_s: float | None = None
