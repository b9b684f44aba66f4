"""Workflow definitions in Port's JSON format.

Current spellings are stored and emitted; older ones are accepted on input
(``options`` for a CONDITION's ``outlets``, ``sourceOptionIdentifier`` for a
connection's ``sourceOutletIdentifier``). Field-level rules live on the models;
the graph rules (SPEC §1) are checked by :func:`switchyard.schemas.parse_workflow`,
which is the one way untrusted JSON becomes a :class:`Workflow`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from switchyard.schemas.base import WireModel
from switchyard.schemas.ids import Identifier
from switchyard.schemas.policy import Policy
from switchyard.schemas.user_inputs import UserInputs

OnFailure = Literal["terminate", "continue"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

# How long a node may wait on the outside world (a worker, a claim, a receiver's
# PATCH): 30 days. A synchronized webhook's HTTP call stays bounded by an hour.
MAX_WAIT_SECONDS = 30 * 24 * 3600
MAX_HTTP_SECONDS = 3600
WaitSeconds = Annotated[float, Field(gt=0, le=MAX_WAIT_SECONDS)]
HttpStatus = Annotated[int, Field(ge=100, le=599)]

TRIGGER_TYPES = frozenset({"SELF_SERVE_TRIGGER", "EVENT_TRIGGER", "SCHEDULE_TRIGGER"})
BRANCHING_TYPES = frozenset({"CONDITION", "INPUT"})
SUPPORTED_TYPES = (
    "SELF_SERVE_TRIGGER", "EVENT_TRIGGER", "SCHEDULE_TRIGGER", "CONDITION", "INPUT", "WEBHOOK",
    "KAFKA", "INTEGRATION_ACTION", "AI", "AI_AGENT", "UPSERT_ENTITY",
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
    # Rules over the caller and the form: an extra way in (schemas/policy.py).
    policy: Policy | None = None


class SelfServeTriggerConfig(WireModel):
    type: Literal["SELF_SERVE_TRIGGER"]
    published: bool = True
    variant: Literal["DEFAULT", "ALERT"] | None = None
    action_card_button_text: str | None = Field(default=None, min_length=1, max_length=15)
    execute_action_button_text: str | None = Field(default=None, min_length=1, max_length=15)
    permissions: TriggerPermissions | None = None
    contexts: list[dict[str, Any]] | None = None
    user_inputs: UserInputs = Field(default_factory=UserInputs)


EntityEventType = Literal["ENTITY_CREATED", "ENTITY_UPDATED", "ENTITY_DELETED", "ANY_ENTITY_CHANGE"]


class EntityEventFilter(WireModel):
    """Which entity changes an ``EVENT_TRIGGER`` reacts to. Port's ``TIMER_EXPIRED``
    (a timer property running out) needs timer properties, which this entity store
    does not have: it is refused with a 422 rather than accepted and never fired."""

    type: EntityEventType
    blueprint_identifier: Identifier

    @field_validator("type", mode="before")
    @classmethod
    def _no_timers(cls, value: Any) -> Any:
        if value in ("TIMER_EXPIRED", "TIMER_PROPERTY_EXPIRED"):
            raise ValueError(
                f"{value} needs timer properties, which this server's entity store does not "
                "have; use ENTITY_CREATED, ENTITY_UPDATED, ENTITY_DELETED or ANY_ENTITY_CHANGE"
            )
        return value


class JqCondition(WireModel):
    """jq ``expressions`` over the entity event ``{diff, action, context}``, combined
    with ``and`` (all true) or ``or`` (any true)."""

    type: Literal["JQ"] = "JQ"
    expressions: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    combinator: Literal["and", "or"] = "and"


class EventTriggerConfig(WireModel):
    """Starts a run when an entity of the store changes (SPEC §2); runs as the
    automation identity, with ``{diff: {before, after}, action, context}`` as output."""

    type: Literal["EVENT_TRIGGER"]
    published: bool = True
    event: EntityEventFilter
    condition: JqCondition | None = None


class ScheduleTriggerConfig(WireModel):
    """Starts a run on each tick of ``cron`` (UTC), at most every 5 minutes; output
    ``{scheduledAt, cron}``."""

    type: Literal["SCHEDULE_TRIGGER"]
    published: bool = True
    cron: str = Field(min_length=1, max_length=200)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from switchyard.schemas.cron import check_cron  # croniter only where cron is used

        return check_cron(value)


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


class EntityMapping(WireModel):
    """What an ``UPSERT_ENTITY`` writes; each string may be a template. ``properties``
    and ``relations`` change only the keys given (the entity's others are kept)."""

    identifier: str | None = None
    title: str | None = None
    icon: str | None = None
    team: str | list[str] | None = None
    properties: dict[str, Any] | str = Field(default_factory=dict)
    relations: dict[str, Any] | str = Field(default_factory=dict)


class UpsertEntityConfig(WireModel):
    """Create or partially update an entity of Switchyard's entity store; output
    ``{response: {data: <entity>}}``. Written by the built-in entity executor, once per
    node run (a redelivered request writes nothing and emits no second event)."""

    type: Literal["UPSERT_ENTITY"]
    blueprint_identifier: str = Field(min_length=1)
    mapping: EntityMapping = Field(default_factory=EntityMapping)
    timeout_seconds: WaitSeconds | None = None
    retry: RetryPolicy | None = None
    on_failure: OnFailure = "terminate"


class InputButton(WireModel):
    identifier: Identifier
    label: str = Field(min_length=1, max_length=100)
    variant: Literal["PRIMARY", "SECONDARY", "DANGER"] = "PRIMARY"
    icon: str | None = None


class InputForm(UserInputs):
    """An ``INPUT`` node's form: a self-service form plus the buttons that answer it."""

    buttons: list[InputButton] = Field(min_length=1, max_length=10)


class InputOutlet(WireModel):
    """Taken once ``numOfResponders`` responders pressed the button of the same id."""

    evaluation_method: Literal["button"] = "button"
    identifier: Identifier
    title: str = ""
    num_of_responders: int = Field(default=1, ge=1, le=1000)
    status_label: dict[str, Any] | None = None
    workflow_status_label: dict[str, Any] | None = None


class UsersQuery(WireModel):
    """Port's entity search over ``_user``; only the empty query is accepted here (a
    rule would need Port's user catalog): a non-empty one is a 422, not ignored."""

    combinator: Literal["and", "or"] = "and"
    rules: list[dict[str, Any]] = Field(default_factory=list, max_length=0)


class Responders(WireModel):
    """Who may answer an ``INPUT`` node: users (emails or client ids), roles, teams."""

    users: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    users_query: UsersQuery | None = None

    @model_validator(mode="after")
    def _someone(self) -> Responders:
        if not (self.users or self.roles or self.teams):
            raise ValueError("name at least one responder (users, roles or teams)")
        return self


class NotificationField(WireModel):
    label: str = Field(min_length=1)
    value: str


class EmailNotification(WireModel):
    """Sent when SMTP is configured (``SWITCHYARD_SMTP_HOST``), else logged as not
    configured."""

    target: Literal["email"]
    fields: list[NotificationField] = Field(min_length=1)


class WebhookNotification(WireModel):
    """Sent by the built-in webhook executor when the node starts waiting."""

    target: Literal["webhook"]
    url: str = Field(min_length=1)
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | list[Any] | str | None = None
    agent: Literal[False] = False


Notification = Annotated[EmailNotification | WebhookNotification, Field(discriminator="target")]


class InputConfig(WireModel):
    """An approval (human in the loop): the node waits until the first outlet, in
    declared order, reaches its ``numOfResponders``; output ``{selectedOutlet,
    responses}``. ``description`` and ``userInputs`` are rendered when it starts."""

    type: Literal["INPUT"]
    description: str | None = Field(default=None, max_length=5000)
    user_inputs: InputForm
    outlets: list[InputOutlet] = Field(min_length=1)
    responders: Responders
    notifications: list[Notification] = Field(default_factory=list, max_length=10)
    # Not in Port (SPEC §7): how long it waits for answers.
    timeout_seconds: WaitSeconds | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_options(cls, data: Any) -> Any:
        return _rename_legacy(data, "options", "outlets")


ActionConfig = (
    WebhookConfig | KafkaConfig | IntegrationActionConfig | AiConfig | AiAgentConfig
    | UpsertEntityConfig
)  # fmt: skip
TriggerConfig = SelfServeTriggerConfig | EventTriggerConfig | ScheduleTriggerConfig
NodeConfig = Annotated[
    TriggerConfig | ConditionConfig | InputConfig | ActionConfig, Field(discriminator="type")
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
        """CONDITION and INPUT: their connections leave by outlet."""
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
