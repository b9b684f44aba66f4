"""What the server's configuration tells the machine: passed in with every event, so
``decide`` stays pure (the processor builds it from the settings, and from state the
server keeps in Redis, once per batch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MachineOptions:
    """``default_timeout_s``: the deadline of waiting action nodes that set no
    ``timeoutSeconds`` (``SWITCHYARD_DEFAULT_NODE_TIMEOUT_S``). ``ai_configured``: an
    OpenAI-compatible endpoint is set (``SWITCHYARD_AI_BASE_URL``), so AI nodes run.
    ``email_configured``: an SMTP server is set (``SWITCHYARD_SMTP_HOST``), so INPUT
    nodes' email notifications are sent."""

    default_timeout_s: float | None = None
    ai_configured: bool = False
    email_configured: bool = False
    # How Port's execution agent takes ``agent: true`` webhooks: from <org id>.runs
    # (KAFKA, the default) or by claiming as _PORT_EXEC_AGENT (POLLING): what the
    # organization's settings say (``portAgentStreamerName``), read once per batch.
    agent_streamer: Literal["KAFKA", "POLLING"] = "KAFKA"
