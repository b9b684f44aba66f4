"""``stack up --secure``: the launcher's servers with TLS and passwords switched on, and
the settings its own processes (and the launcher's checks) connect with (README:
Secured connections).

Made once per stack home and kept there, readable only by its owner: a CA and a server
certificate for 127.0.0.1/localhost in ``<home>/tls`` (``tls.py``), and the SCRAM
user's and Redis's passwords in ``<home>/stack-secrets.json``. What each server does
with them:

- **Kafka**: the client listener is SASL_SSL with SCRAM-SHA-512 (the user is made when
  the storage is formatted); the brokers talk to each other over it with the same user;
  the controller listener is TLS with client certificates, the brokers and controllers
  presenting the stack's server certificate.
- **Redis**: TLS only (no plain port) and ``requirepass``; a cluster's nodes also
  replicate (``tls-replication``) and gossip (``tls-cluster``) over TLS, replicas
  authenticating to their master (``masterauth``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from switchyard.cli.stack.tls import Certificates, make_certificates
from switchyard.schemas.settings import Settings

KAFKA_USER = "switchyard"
KAFKA_MECHANISM = "SCRAM-SHA-512"
# A local stack's home lives long: its certificates last a year (`stack down` and
# deleting <home>/tls makes new ones).
_CERT_DAYS = 365


@dataclass(frozen=True)
class StackSecrets:
    """What the secured servers of one stack home are started with."""

    certs: Certificates
    kafka_user: str
    kafka_password: str
    redis_password: str


def _certificates(folder: Path) -> Certificates:
    made = Certificates(
        ca_cert=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
    )
    if made.server_chain.exists() and made.server_key.exists():
        return made
    return make_certificates(folder, days=_CERT_DAYS)


def stack_secrets(home: Path) -> StackSecrets:
    """The home's certificates and passwords, made on first use."""
    home = home.resolve()
    certs = _certificates(home / "tls")
    path = home / "stack-secrets.json"
    if not path.exists():
        # Hex only: the passwords go into a JAAS line and a redis.conf unquoted.
        made = {"kafka_password": secrets.token_hex(24), "redis_password": secrets.token_hex(24)}
        path.write_text(json.dumps(made, indent=2) + "\n")
        path.chmod(0o600)
    saved = json.loads(path.read_text())
    return StackSecrets(
        certs=certs,
        kafka_user=KAFKA_USER,
        kafka_password=str(saved["kafka_password"]),
        redis_password=str(saved["redis_password"]),
    )


def client_settings(settings: Settings, secrets_: StackSecrets) -> Settings:
    """``settings`` connecting as the stack's own clients do: SASL_SSL (SCRAM) to the
    brokers and TLS with the password to Redis (on ``redis_port``, a cluster's first
    node), both checking the servers' certificates against the stack's CA."""
    return settings.model_copy(
        update={
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": KAFKA_MECHANISM,
            "kafka_sasl_username": secrets_.kafka_user,
            "kafka_sasl_password": SecretStr(secrets_.kafka_password),
            "kafka_ssl_cafile": secrets_.certs.ca_cert,
            "redis_url": f"rediss://127.0.0.1:{settings.redis_port}/0",
            "redis_password": SecretStr(secrets_.redis_password),
            "redis_ssl_ca_file": secrets_.certs.ca_cert,
        }
    )


def redis_options(secrets_: StackSecrets) -> list[str]:
    """The secured part of a launcher ``redis-server``'s configuration file (the
    password is kept out of the process's command line)."""
    certs = secrets_.certs
    return [
        f"tls-cert-file {certs.server_cert.resolve()}",
        f"tls-key-file {certs.server_key.resolve()}",
        f"tls-ca-cert-file {certs.ca_cert.resolve()}",
        # Clients prove who they are with the password, not a certificate.
        "tls-auth-clients no",
        f"requirepass {secrets_.redis_password}",
    ]


def redis_cluster_options(secrets_: StackSecrets) -> list[str]:
    """A cluster node's additions: replication and the cluster bus over TLS (where the
    nodes do present the stack's certificate to each other), replicas logging in."""
    return ["tls-replication yes", "tls-cluster yes", f"masterauth {secrets_.redis_password}"]


def write_private(path: Path, text: str) -> Path:
    """``text`` into ``path``, readable only by its owner (it holds a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)
    return path
