"""The one settings object, read from the environment (``SWITCHYARD_`` prefix).

Built once in an entry point (the CLI, a test fixture) and passed down; no module
reads the environment on its own. Every field can be set as
``SWITCHYARD_<FIELD>`` (``SWITCHYARD_KAFKA_BOOTSTRAP_SERVERS=host:9092``) or in a
``.env`` file in the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the services are, how the local stack is laid out, and engine limits."""

    model_config = SettingsConfigDict(
        env_prefix="SWITCHYARD_", env_file=".env", extra="ignore", frozen=True
    )

    # Services the engine, the bridge and the workers talk to.
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092", description="Kafka bootstrap servers, comma-separated."
    )
    redis_url: str = Field(default="redis://127.0.0.1:16379/0", description="Redis URL.")
    redis_wait_replicas: int = Field(
        default=0,
        ge=0,
        le=16,
        description="Replicas that must acknowledge a batch's Redis writes (WAIT) before "
        "the engine commits its inbox offsets; 0 = no WAIT (docs/scaling.md).",
    )
    redis_wait_timeout_ms: int = Field(
        default=1000,
        ge=1,
        le=60_000,
        description="How long one WAIT waits for those replicas; after 5 short ones the "
        "engine stops consuming and exits, its offsets uncommitted.",
    )
    redis_cluster: bool = Field(
        default=False,
        description="redis_url names one node of a Redis Cluster: connect with the cluster "
        "client, which finds the other nodes from it (`stack up --cluster` sets it).",
    )
    topic_prefix: str = Field(
        default="switchyard.", description="Prefix of every topic name, to share a cluster."
    )
    inbox_partitions: int = Field(
        default=12,
        ge=1,
        le=1024,
        description="Partitions of the inbox; fixed at creation (changing it remaps run ids).",
    )
    topic_replication_factor: int = Field(default=1, ge=1)
    kafka_max_message_bytes: int = Field(
        default=1048576, ge=1024, description="Largest message the producer sends."
    )
    # Secured connections (README: Secured connections). Checked together at load: a
    # half-configured TLS/SASL setting is refused naming the variable, not at first connect.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How every Kafka client talks to the brokers."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism of the SASL_* protocols."
    )
    kafka_sasl_username: str | None = Field(
        default=None, validate_default=True, description="SASL user (SASL_* protocols)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validate_default=True, description="SASL password (SASL_* protocols)."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="PEM CA bundle the brokers' certificates are checked against (SSL and "
        "SASL_SSL); unset: the system's CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None, description="PEM client certificate, for brokers that require one."
    )
    kafka_ssl_keyfile: Path | None = Field(
        default=None, validate_default=True, description="PEM private key of kafka_ssl_certfile."
    )
    redis_username: str | None = Field(
        default=None, description="Redis ACL user, when redis_url names none."
    )
    redis_password: SecretStr | None = Field(
        default=None, description="Redis password (AUTH), when redis_url carries none."
    )
    redis_ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle the Redis server's certificate is checked against "
        "(rediss:// URLs only); unset: the system's CAs.",
    )
    redis_ssl_certfile: Path | None = Field(
        default=None, description="PEM client certificate, for a Redis that requires one."
    )
    redis_ssl_keyfile: Path | None = Field(
        default=None, validate_default=True, description="PEM private key of redis_ssl_certfile."
    )

    # The engine.
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description='Secrets templates read as .secrets["name"], as JSON: {"name": "value"}.',
    )
    engine_group: str = Field(default="switchyard-engine", description="Consumer group.")
    engine_driver: Literal["aiokafka", "faust"] = Field(
        default="aiokafka",
        description="What drives the inbox: a plain aiokafka consumer loop (default) or "
        "faust-streaming; both run the same processor (README: Inbox drivers).",
    )
    engine_instance_id: str | None = Field(
        default=None,
        description="Static group membership (KIP-345): a restarted engine with the same id "
        "gets its partitions back at once instead of after a rebalance. Unique per process.",
    )
    executor_instance_id: str | None = Field(
        default=None,
        description="Static group membership of the webhook executor (as engine_instance_id).",
    )
    triggers_instance_id: str | None = Field(
        default=None,
        description="Static group membership of the trigger matcher (as engine_instance_id).",
    )
    engine_session_timeout_s: float = Field(
        default=10.0, ge=3, le=300, description="How long a silent engine keeps its partitions."
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        ge=0.5,
        le=600,
        description="How long a process drains on SIGTERM before it exits regardless.",
    )
    default_node_timeout_s: float | None = Field(
        default=None, gt=0, le=30 * 24 * 3600,
        description="Deadline of waiting action nodes (KAFKA, INTEGRATION_ACTION, async "
        "WEBHOOK) that set no timeoutSeconds of their own; none by default.",
    )  # fmt: skip
    engine_batch_max: int = Field(default=200, ge=1, le=10000)
    engine_batch_within_ms: int = Field(default=5, ge=0, le=10000)
    ai_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible API root for AI and AI_AGENT nodes, e.g. "
        "https://api.openai.com/v1 (…/chat/completions is called); unset: those nodes fail "
        "saying so.",
    )
    ai_api_key: SecretStr | None = Field(default=None, description="Bearer key for it.")
    ai_model: str = Field(default="gpt-4o-mini", min_length=1,
                          description="Model of nodes that name none.")  # fmt: skip
    ai_timeout_s: float = Field(default=120.0, gt=0, le=3600,
                                description="Bound of one chat-completions call.")  # fmt: skip
    # -- Port's execution agent (agent: true webhooks; README: Execution agent) --
    org_id: str = Field(
        default="switchyard", pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$",
        description="Organization id: agent: true webhooks are published to <org_id>.runs, "
        "the topic Port's execution agent reads (its PORT_ORG_ID).",
    )  # fmt: skip
    agent_client_id: str | None = Field(
        default=None, min_length=1,
        description="clientId of the machine credential Port's execution agent logs in with "
        "(its PORT_CLIENT_ID); the local stack makes one.",
    )  # fmt: skip
    agent_client_secret: SecretStr | None = Field(
        default=None,
        description="That credential's secret in plain text (its PORT_CLIENT_SECRET): the "
        "engine signs agent messages with it. Unset: they go unsigned, and the agent fails "
        "their node runs.",
    )
    # -- the timer service (switchyard timers) --
    timer_batch_max: int = Field(
        default=500, ge=1, le=10_000,
        description="Most due timers the timer service fires per Redis call and Kafka flush.",
    )  # fmt: skip
    timer_max_sleep_s: float = Field(
        default=1.0, ge=0.01, le=60,
        description="Longest the timer service sleeps between looks at the timer set; an "
        "earlier timer armed meanwhile wakes it at once (Redis pub/sub), so this bounds the "
        "lateness only when that wake-up is lost (Redis reconnecting).",
    )  # fmt: skip

    # -- event and schedule triggers (switchyard triggers, switchyard scheduler) --
    automation_actor: str = Field(
        default="switchyard-automation", min_length=1, max_length=200,
        description="createdBy of runs started by an EVENT_TRIGGER or a SCHEDULE_TRIGGER (the "
        "organization's automation identity).",
    )  # fmt: skip
    triggers_group: str = Field(
        default="switchyard-triggers",
        description="Consumer group of the trigger matchers (they share the entity events).",
    )
    trigger_max_depth: int = Field(
        default=5, ge=1, le=100,
        description="Longest chain of event-triggered runs (a run's UPSERT_ENTITY change "
        "triggering a run, whose change triggers another...): past it the trigger is refused "
        "and logged, so a workflow can't re-trigger itself forever.",
    )  # fmt: skip
    scheduler_poll_s: float = Field(
        default=5.0, gt=0, le=60,
        description="How often the scheduler looks for due SCHEDULE_TRIGGER ticks (and new "
        "or changed schedules); a tick fires at most this late.",
    )  # fmt: skip
    # -- INPUT notifications by email: unset host, email notifications are logged as
    # not configured (the webhook ones are sent regardless) --
    smtp_host: str | None = Field(default=None, description="SMTP server for INPUT emails.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=True, description="STARTTLS before logging in.")
    smtp_from: str = Field(default="switchyard@localhost", min_length=3)

    # The local stack (`switchyard stack up`).
    home: Path = Field(
        default=Path(".switchyard"),
        description="Folder for the local stack's data, logs, pid files and jar cache.",
    )
    cache_home: Path | None = Field(
        default=None,
        description="Folder for downloads that survive `stack down` (default: <home>/cache).",
    )
    kafka_version: str = Field(default="3.9.1", description="Apache Kafka release of the broker.")
    kafka_port: int = Field(default=19092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=19093, ge=1, le=65535)
    kafka_heap: str = Field(default="512m", pattern=r"^\d+[mg]$", description="JVM -Xmx.")
    redis_port: int = Field(default=16379, ge=1, le=65535)
    durability: Literal["default", "durable"] = Field(
        default="default",
        description="Local stack's fsync profile: default (Redis appendfsync everysec, the "
        "broker's default flush) or durable (appendfsync always, broker flush.messages=1).",
    )
    bridge_host: str = Field(default="127.0.0.1")
    bridge_port: int = Field(default=8080, ge=1, le=65535)
    bridge_processes: int = Field(
        default=1, ge=1, le=64,
        description="Bridge processes serving bridge_host:bridge_port (`switchyard bridge "
        "--processes N`): one socket bound by a parent, accepted on by N children.",
    )  # fmt: skip
    bridge_ops_port: int = Field(
        default=9300, ge=0, le=65535,
        description="With several bridge processes, process i (from 0) serves its own "
        "/metrics, /healthz and /readyz on this port + i; 0: none.",
    )  # fmt: skip

    # The bridge (HTTP API): who may call it and how long a trigger waits for its run.
    auth_file: Path | None = Field(
        default=None,
        description="JSON file of users and machine credentials (default: <home>/auth.json).",
    )
    token_secret: SecretStr | None = Field(
        default=None, description="HMAC key that signs access tokens; the bridge needs it."
    )
    token_ttl_seconds: int = Field(
        default=3600, ge=60, le=7 * 24 * 3600, description="Lifetime of an access token."
    )
    # Abuse of POST /v1/auth/access_token: failed attempts counted in Redis per window.
    auth_failures_per_client: int = Field(
        default=10, ge=0,
        description="Failed token requests a client id may have in a window before the "
        "next ones are answered 429 without checking the secret; 0: no limit.",
    )  # fmt: skip
    auth_failures_per_address: int = Field(
        default=50, ge=0,
        description="Failed token requests (of any client ids) one caller address may have "
        "in a window before the next ones are answered 429; behind a proxy the address is "
        "the proxy's. 0: no limit.",
    )  # fmt: skip
    auth_failure_window_seconds: int = Field(
        default=300, ge=1, le=86_400,
        description="The fixed window failed token requests are counted in, from the first.",
    )  # fmt: skip
    auth_verified_cache_seconds: float = Field(
        default=60.0, ge=0, le=3600,
        description="How long a bridge process takes a client secret it has just verified "
        "as correct without the scrypt check again (kept as a keyed hash); 0: off.",
    )  # fmt: skip
    trigger_wait_ms: int = Field(
        default=5000,
        ge=0,
        le=60_000,
        description="How long POST .../runs waits for the engine before answering 202.",
    )
    idempotency_ttl_seconds: int = Field(
        default=24 * 3600, ge=60, description="How long an Idempotency-Key maps to its run."
    )
    stream_heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="Interval of the ': keep-alive' comment on the bridge's SSE streams.",
    )
    request_body_max_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body the bridge reads; a bigger one is answered 413.",
    )

    # Size bounds on what nodes send and report, and where webhook nodes may call.
    node_output_max_bytes: int = Field(
        default=262_144,
        ge=1024,
        description="Largest output (as JSON) a node run may report; a bigger one is refused.",
    )
    webhook_allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts and CIDRs webhook nodes may call even when they resolve to "
        'loopback, link-local or private addresses, as JSON: ["127.0.0.1/32", "hooks.lan"].',
    )
    webhook_max_request_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body a webhook node sends."
    )
    webhook_max_response_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest response body a webhook node reads."
    )
    webhook_concurrency: int = Field(
        default=32, ge=1, le=4096,
        description="Webhook calls the executor makes at once (and the keep-alive "
        "connections its HTTP pool keeps). Each call's pool look-up checks every idle "
        "connection: raise it for slow receivers, not beyond what they need.",
    )  # fmt: skip

    # Bounds on `{{ jq }}` templates: a template can't hang or bloat the engine.
    template_timeout_ms: int = Field(
        default=1000, ge=10, le=60_000, description="Wall time one template may take."
    )
    template_max_output_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest result of one template, as JSON."
    )
    template_memory_mb: int = Field(
        default=256, ge=64, description="Address-space cap of each jq sandbox process."
    )
    template_workers: int = Field(
        default=2, ge=1, le=64, description="jq sandbox processes kept running per engine."
    )

    # Operations (README: Operations). Each process serves /metrics, /healthz and
    # /readyz on its own port; the bridge on its API port. Port 0 turns it off.
    metrics_enabled: bool = Field(
        default=True,
        description="Record Prometheus metrics; off, every recording call is a no-op.",
    )
    ops_host: str = Field(
        default="127.0.0.1", description="Address the ops endpoints bind (0.0.0.0 in compose)."
    )
    engine_ops_port: int = Field(default=9101, ge=0, le=65535)
    executor_ops_port: int = Field(default=9102, ge=0, le=65535)
    timers_ops_port: int = Field(default=9103, ge=0, le=65535)
    scheduler_ops_port: int = Field(default=9104, ge=0, le=65535)
    triggers_ops_port: int = Field(default=9105, ge=0, le=65535)
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="Log lines: one JSON object per line, readable text, or auto (text on "
        "a terminal, JSON otherwise).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description="The event loop every process runs on: uvloop (libuv, in C: socket "
        "writes and callbacks cost a fraction of asyncio's) or Python's own asyncio.",
    )
    run_retention_days: float = Field(
        default=30, ge=0, le=36500,
        description="Finished runs, their node runs, logs and index entries are removed "
        "this long after they finished; 0 keeps them forever.",
    )  # fmt: skip

    @field_validator("agent_client_id", "agent_client_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker compose passes ${SWITCHYARD_AGENT_CLIENT_SECRET:-} as "" when unset: an
        # empty key would sign every message with "", which no agent's secret matches.
        return None if value == "" else value

    @field_validator("engine_driver")
    @classmethod
    def _wait_needs_aiokafka(cls, value: str, info: ValidationInfo) -> str:
        # Only the aiokafka loop holds its commit until replicas acknowledged; faust
        # commits on its own schedule, so the setting would promise what it can't keep.
        replicas = info.data.get("redis_wait_replicas", 0)
        if value == "faust" and replicas:
            raise ValueError(
                f"the faust driver can't wait for Redis replicas before committing "
                f"(SWITCHYARD_REDIS_WAIT_REPLICAS={replicas}): use aiokafka, or set it to 0"
            )
        return value

    @field_validator("kafka_sasl_username", "kafka_sasl_password")
    @classmethod
    def _sasl_needs_credentials(cls, value: object, info: ValidationInfo) -> object:
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        if protocol.startswith("SASL_") and not value:
            raise ValueError(f"must be set when SWITCHYARD_KAFKA_SECURITY_PROTOCOL is {protocol}")
        return value

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
    @classmethod
    def _kafka_tls_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        if value is not None and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(
                f"is only used by SWITCHYARD_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL (it is "
                f"{protocol}): set that too, or unset this"
            )
        return _key_with_cert(_readable(value), info, "KAFKA")

    @field_validator("redis_ssl_ca_file", "redis_ssl_certfile", "redis_ssl_keyfile")
    @classmethod
    def _redis_tls_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        url = str(info.data.get("redis_url", ""))
        if value is not None and not url.startswith("rediss://"):
            raise ValueError(
                "is only used with a rediss:// SWITCHYARD_REDIS_URL (TLS): use rediss://, "
                "or unset this"
            )
        return _key_with_cert(_readable(value), info, "REDIS")

    def ops_port(self, service: str) -> int:
        """The port of ``service``'s /metrics, /healthz and /readyz (0: not served)."""
        if service == "bridge":
            return self.bridge_port
        port: int = getattr(self, f"{service}_ops_port")
        return port

    @property
    def auth_path(self) -> Path:
        """The bridge's users and machine credentials."""
        return self.auth_file or self.home / "auth.json"

    @property
    def cache_dir(self) -> Path:
        """Downloads that survive `stack down` (the broker's jars)."""
        return self.cache_home or self.home / "cache"

    @property
    def run_dir(self) -> Path:
        """Pid files of the processes `stack up` started."""
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"


def _readable(path: Path | None) -> Path | None:
    if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
        raise ValueError(f"{path} is not a readable file")
    return path


def _key_with_cert(value: Path | None, info: ValidationInfo, kind: str) -> Path | None:
    # Checked on the key file (validated after the certificate, and even when unset): a
    # certificate without its key, or a key without a certificate, can't authenticate.
    if info.field_name == f"{kind.lower()}_ssl_keyfile":
        cert = info.data.get(f"{kind.lower()}_ssl_certfile")
        if (cert is None) != (value is None):
            raise ValueError(
                f"SWITCHYARD_{kind}_SSL_CERTFILE and SWITCHYARD_{kind}_SSL_KEYFILE go "
                "together: set both or neither"
            )
    return value
