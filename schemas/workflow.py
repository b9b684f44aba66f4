"""Workflow definitions in Port's JSON format.

Current spellings are stored and emitted; older ones are accepted on input
(``options`` for a CONDITION's ``outlets``, ``sourceOptionIdentifier`` for a
connection's ``sourceOutletIdentifier``). Field-level rules live on the models;
the graph rules (SPEC §1) are checked by :func:`switchyard.schemas.parse_workflow`,
which is the one way untrusted JSON becomes a :class:`Workflow`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from switchyard.schemas.base import WireModel
from switchyard.schemas.ids import Identifier
from switchyard.schemas.user_inputs import UserInputs

OnFailure = Literal["terminate", "continue"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

# How long a node may wait on the outside world (a worker, a claim, a receiver's
# PATCH): 30 days. A synchronized webhook's HTTP call stays bounded by an hour.
MAX_WAIT_SECONDS = 30 * 24 * 3600
MAX_HTTP_SECONDS = 3600
WaitSeconds = Annotated[float, Field(gt=0, le=MAX_WAIT_SECONDS)]
HttpStatus = Annotated[int, Field(ge=100, le=599)]

TRIGGER_TYPES = frozenset({"SELF_SERVE_TRIGGER"})
BRANCHING_TYPES = frozenset({"CONDITION"})
SUPPORTED_TYPES = (
    "SELF_SERVE_TRIGGER", "CONDITION", "WEBHOOK", "KAFKA", "INTEGRATION_ACTION", "AI", "AI_AGENT",
)  # fmt: skip


def _rename_legacy(data: Any, old: str, new: str) -> Any:
    """Move ``old`` to ``new`` in a raw dict; both given and different is an error."""
    if isinstance(data, dict) and old in data:
        data = dict(data)
        value = data.pop(old)
        if new in data and data[new] != value:
            raise ValueError(f"{old} (legacy) and {new} disagree; give only {new}")
        data.setdefault(new, value)
    return data


class TriggerPermissions(WireModel):
    """Who may run a self-service trigger; all empty means Admins only (SPEC §6)."""

    roles: list[str] = Field(default_factory=list)
    users: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    policy: dict[str, Any] | None = None


class SelfServeTriggerConfig(WireModel):
    type: Literal["SELF_SERVE_TRIGGER"]
    published: bool = True
    variant: Literal["DEFAULT", "ALERT"] | None = None
    action_card_button_text: str | None = Field(default=None, min_length=1, max_length=15)
    execute_action_button_text: str | None = Field(default=None, min_length=1, max_length=15)
    permissions: TriggerPermissions | None = None
    contexts: list[dict[str, Any]] | None = None
    user_inputs: UserInputs = Field(default_factory=UserInputs)


class RetryPolicy(WireModel):
    """Retries with exponential backoff of an action node (SPEC §7; not in Port).

    Attempt n+1 starts ``interval(n)`` seconds after attempt n failed, while fewer
    than ``max_attempts`` have run and the failure matches ``retry_on``: ``"timeout"``
    (the node's deadline passed), ``"failure"`` (any other failure), or an HTTP status
    (a webhook answered it). None: every failure is retried.
    """

    max_attempts: int = Field(default=1, ge=1, le=100)
    initial_interval_seconds: float = Field(default=1.0, gt=0, le=MAX_WAIT_SECONDS)
    backoff_coefficient: float = Field(default=2.0, ge=1, le=100)
    maximum_interval_seconds: float = Field(default=300.0, gt=0, le=MAX_WAIT_SECONDS)
    retry_on: list[Literal["timeout", "failure"] | HttpStatus] | None = Field(
        default=None, min_length=1
    )

    def interval(self, attempt: int) -> float:
        """Seconds between the failure of ``attempt`` (1-based) and the next one."""
        grown = self.initial_interval_seconds * self.backoff_coefficient ** (attempt - 1)
        return min(grown, self.maximum_interval_seconds)

    def retries(self, attempt: int, cause: str, status: int | None) -> bool:
        """Whether a failure of ``attempt`` (``cause`` "timeout" or "failure", with the
        HTTP status a webhook got, if any) is followed by another attempt."""
        if attempt >= self.max_attempts:
            return False
        if self.retry_on is None:
            return True
        return cause in self.retry_on or (status is not None and status in self.retry_on)


class Outlet(WireModel):
    """One branch of a CONDITION: taken when ``expression`` (bare jq) yields ``true``."""

    identifier: Identifier
    title: str = ""
    expression: str = Field(min_length=1)
    status_label: dict[str, Any] | None = None
    workflow_status_label: dict[str, Any] | None = None


class ConditionConfig(WireModel):
    type: Literal["CONDITION"]
    outlets: list[Outlet] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _legacy_options(cls, data: Any) -> Any:
        return _rename_legacy(data, "options", "outlets")


class WebhookConfig(WireModel):
    """An HTTP call made by the built-in webhook executor (or, async, a callback); with
    ``agent: true``, made by Port's execution agent instead (README: Execution agent)."""

    type: Literal["WEBHOOK"]
    url: str = Field(min_length=1)
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | list[Any] | str | None = None
    synchronized: bool = True
    agent: bool = False
    on_timeout: Literal["fail", "continue"] = "fail"
    # Not in Port (SPEC §7). Synchronized: the HTTP call's bound (the executor's default
    # if unset, at most an hour). Not synchronized, or agent: the engine's deadline for
    # the receiver's (or the agent's) PATCH, from the hand-over.
    timeout_seconds: WaitSeconds | None = None
    retry: RetryPolicy | None = None
    on_failure: OnFailure = "terminate"

    @model_validator(mode="after")
    def _http_bound(self) -> WebhookConfig:
        # With agent: true, Port's execution agent makes the call (its own HTTP timeout)
        # and timeoutSeconds is the engine's deadline for its report, as for async ones.
        if self.synchronized and not self.agent and (self.timeout_seconds or 0) > MAX_HTTP_SECONDS:
            raise ValueError(
                f"timeoutSeconds: at most {MAX_HTTP_SECONDS} for a synchronized webhook (an "
                f"HTTP call); got {self.timeout_seconds:g}"
            )
        return self


class KafkaConfig(WireModel):
    """A message on the node-run request topic; a consumer completes the node."""

    type: Literal["KAFKA"]
    payload: dict[str, Any] | list[Any] = Field(default_factory=dict)
    # Not in Port (SPEC §7): the engine's deadline for the consumer's report.
    timeout_seconds: WaitSeconds | None = None
    retry: RetryPolicy | None = None
    on_failure: OnFailure = "terminate"


class IntegrationActionConfig(WireModel):
    """Work claimed by an integration worker (claim → ack → PATCH)."""

    type: Literal["INTEGRATION_ACTION"]
    installation_id: str | None = Field(default=None, min_length=1)
    integration_provider: str = Field(min_length=1)
    integration_invocation_type: str = Field(min_length=1)
    integration_action_execution_properties: dict[str, Any] = Field(default_factory=dict)
    defer_integration_installation: bool = False
    # Not in Port (SPEC §7): the engine's deadline, from pending to completion.
    timeout_seconds: WaitSeconds | None = None
    retry: RetryPolicy | None = None
    on_failure: OnFailure = "terminate"

    @model_validator(mode="after")
    def _installation_given(self) -> IntegrationActionConfig:
        if self.installation_id is None and not self.defer_integration_installation:
            raise ValueError("installationId is required unless deferIntegrationInstallation")
        return self


class McpServer(WireModel):
    identifier: str = Field(min_length=1)


class _AiFields(WireModel):
    """What ``AI`` and ``AI_AGENT`` share (Port's fields). This server runs them through an
    OpenAI-compatible chat-completions endpoint (``SWITCHYARD_AI_BASE_URL``); ``tools``
    and ``mcpServers`` are accepted so that exported workflows load, and not used."""

    user_prompt: str = Field(min_length=1)
    tools: list[str] | None = None
    mcp_servers: list[McpServer] | None = Field(default=None, max_length=5)
    provider: str | None = Field(default=None, min_length=1)
    model: str | None = Field(default=None, min_length=1)
    output_schema: dict[str, Any] | None = None
    timeout_seconds: WaitSeconds | None = None
    retry: RetryPolicy | None = None
    on_failure: OnFailure = "terminate"

    @model_validator(mode="after")
    def _pairs_and_schema(self) -> _AiFields:
        if (self.provider is None) != (self.model is None):
            raise ValueError("provider and model: set both or neither")
        if self.output_schema is not None and self.output_schema.get("type") != "object":
            got = self.output_schema.get("type")
            raise ValueError(f'outputSchema.type: must be "object" (got {got!r})')
        return self


class AiConfig(_AiFields):
    """An LLM call: the response completes the node (``{response, invocationIdentifier}``)."""

    type: Literal["AI"]
    system_prompt: str = ""


class AiAgentConfig(_AiFields):
    """An AI agent of Port's; here the agent's identifier frames the system prompt."""

    type: Literal["AI_AGENT"]
    agent_identifier: str = Field(min_length=1)


ActionConfig = WebhookConfig | KafkaConfig | IntegrationActionConfig | AiConfig | AiAgentConfig
NodeConfig = Annotated[
    SelfServeTriggerConfig | ConditionConfig | ActionConfig, Field(discriminator="type")
]


class Node(WireModel):
    identifier: Identifier
    title: str | None = None
    icon: str | None = None
    description: str | None = None
    config: NodeConfig
    variables: dict[str, Any] = Field(default_factory=dict)
    links: list[str] = Field(default_factory=list, max_length=3)
    verbose: bool = False

    @property
    def type(self) -> str:
        return self.config.type

    @property
    def is_trigger(self) -> bool:
        return self.config.type in TRIGGER_TYPES

    @property
    def is_branching(self) -> bool:
        return self.config.type in BRANCHING_TYPES


class Connection(WireModel):
    source_identifier: Identifier
    target_identifier: Identifier
    source_outlet_identifier: Identifier | None = None
    fallback: bool = False
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_option(cls, data: Any) -> Any:
        return _rename_legacy(data, "sourceOptionIdentifier", "sourceOutletIdentifier")


class Workflow(WireModel):
    """A workflow definition; ``version`` and the audit fields are set by the server."""

    identifier: Identifier
    title: str | None = Field(default=None, max_length=100)
    icon: str | None = None
    description: str | None = Field(default=None, max_length=1100)
    category: str | None = Field(default=None, max_length=40)
    allow_anyone_to_view_runs: bool = True
    nodes: list[Node] = Field(min_length=1, max_length=100)
    connections: list[Connection] = Field(default_factory=list)
    # Not in Port (SPEC §7): the run is cancelled (forced) and FAILED after this long.
    timeout_seconds: WaitSeconds | None = None
    version: int | None = Field(default=None, ge=1)
    # Set by the server; accepted so that a definition read back by GET can be PUT.
    id: str | None = None
    org_id: str | None = None
    created_by: str | None = None
    updated_by: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    def node(self, identifier: str) -> Node | None:
        return next((n for n in self.nodes if n.identifier == identifier), None)
