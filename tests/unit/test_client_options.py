"""kafka_options and redis_client: what the settings turn into, and the half-configured
settings refused at load naming the variable (no servers needed: nothing connects)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection

from switchyard.cli.main import settings_problems
from switchyard.cli.stack.tls import Certificates, make_certificates
from switchyard.engine.store.client import redis_client
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _settings(**values: Any) -> Settings:
    return Settings(**values)


def test_plaintext_kafka_is_bootstrap_servers_and_the_protocol_only() -> None:
    options = kafka_options(_settings(kafka_bootstrap_servers="k1:9092,k2:9092"))
    assert options == {"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_kafka_carries_context_mechanism_and_credentials(certs: Certificates) -> None:
    settings = _settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="engine", kafka_sasl_password="s3cret",
        kafka_ssl_cafile=certs.ca_cert,
        kafka_ssl_certfile=certs.server_cert, kafka_ssl_keyfile=certs.server_key,
    )  # fmt: skip
    options = kafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("engine", "s3cret")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "switchyard test CA"),),)
    ]
    # The password is a secret: never in the settings' repr (logged at start-up).
    assert "s3cret" not in repr(settings)


def test_sasl_plaintext_has_no_tls_context() -> None:
    settings = _settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                         kafka_sasl_username="u", kafka_sasl_password="p")  # fmt: skip
    options = kafka_options(settings)
    assert "ssl_context" not in options
    assert options["sasl_mechanism"] == "PLAIN"


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": "p"},
         "SWITCHYARD_KAFKA_SASL_USERNAME"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"},
         "SWITCHYARD_KAFKA_SASL_PASSWORD"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/no/such/ca.pem"},
         "SWITCHYARD_KAFKA_SSL_CAFILE"),
        ({"kafka_ssl_cafile": "ca"}, "SWITCHYARD_KAFKA_SSL_CAFILE"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "cert"},
         "SWITCHYARD_KAFKA_SSL_KEYFILE"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI",
          "kafka_sasl_username": "u", "kafka_sasl_password": "p"},
         "SWITCHYARD_KAFKA_SASL_MECHANISM"),
        ({"redis_ssl_ca_file": "ca"}, "SWITCHYARD_REDIS_SSL_CA_FILE"),
        ({"redis_url": "rediss://r:6379/0", "redis_ssl_ca_file": "/no/such/ca.pem"},
         "SWITCHYARD_REDIS_SSL_CA_FILE"),
        ({"redis_url": "rediss://r:6379/0", "redis_ssl_keyfile": "key"},
         "SWITCHYARD_REDIS_SSL_KEYFILE"),
    ],
)  # fmt: skip
def test_half_configured_connections_are_refused_naming_the_variable(
    values: dict[str, Any], variable: str, certs: Certificates
) -> None:
    # Files that exist stand for the ones given by name, so only the rule under test fails.
    real = {"ca": certs.ca_cert, "cert": certs.server_cert, "key": certs.server_key}
    values = {name: real.get(value, value) for name, value in values.items()}
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    line = settings_problems(refused.value)
    assert line.startswith(variable), line
    assert ";" not in line  # one problem, one variable


def test_redis_client_is_a_single_server_client_by_default() -> None:
    client = redis_client(_settings(redis_url="redis://r:6379/2"), socket_timeout=1.5)
    assert type(client) is aioredis.Redis
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["db"], kwargs["socket_timeout"]) == ("r", 2, 1.5)
    assert kwargs.get("password") is None


def test_redis_credentials_from_settings_fill_a_url_without_them() -> None:
    settings = _settings(redis_url="redis://r:6379/0", redis_username="engine",
                         redis_password="from-settings")  # fmt: skip
    kwargs = redis_client(settings).connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("engine", "from-settings")


def test_redis_credentials_in_the_url_win() -> None:
    settings = _settings(redis_url="redis://alice:from-url@r:6379/0",
                         redis_username="engine", redis_password="from-settings")  # fmt: skip
    kwargs = redis_client(settings).connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("alice", "from-url")


def test_rediss_url_gets_tls_with_the_ca_and_client_certificate(certs: Certificates) -> None:
    settings = _settings(redis_url="rediss://r:6380/0", redis_ssl_ca_file=certs.ca_cert,
                         redis_ssl_certfile=certs.server_cert,
                         redis_ssl_keyfile=certs.server_key)  # fmt: skip
    pool = redis_client(settings).connection_pool
    assert pool.connection_class is SSLConnection
    kwargs = pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == str(certs.ca_cert)
    assert (kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == (
        str(certs.server_cert), str(certs.server_key),
    )  # fmt: skip


def test_cluster_flag_gives_a_cluster_client_with_the_same_auth_and_tls(
    certs: Certificates,
) -> None:
    settings = _settings(redis_url="rediss://node-1:7000/0", redis_cluster=True,
                         redis_password="pw", redis_ssl_ca_file=certs.ca_cert)  # fmt: skip
    client: Any = redis_client(settings)
    assert isinstance(client, RedisCluster)
    kwargs = client.nodes_manager.connection_kwargs
    assert kwargs["connection_class"] is SSLConnection
    assert (kwargs["password"], kwargs["ssl_ca_certs"]) == ("pw", str(certs.ca_cert))
    assert [(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()] == [
        ("node-1", 7000)
    ]


def test_path_settings_keep_their_type(certs: Certificates) -> None:
    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(certs.ca_cert))
    assert settings.kafka_ssl_cafile == Path(certs.ca_cert)


def test_faust_driver_gets_the_same_connection(certs: Certificates) -> None:
    from faust.auth import SASLCredentials
    from faust.types.auth import AuthProtocol, SASLMechanism

    from switchyard.engine.inbox import faust_broker_credentials

    assert faust_broker_credentials(_settings()) is None
    settings = _settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="engine",
                         kafka_sasl_password="pw", kafka_ssl_cafile=certs.ca_cert)  # fmt: skip
    credentials = faust_broker_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.username, credentials.password) == ("engine", "pw")
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_512
    assert credentials.protocol is AuthProtocol.SASL_SSL
