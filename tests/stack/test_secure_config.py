"""What ``stack up --secure`` configures, without starting a server: the home's
certificates and passwords (made once), the settings every process connects with, the
brokers' listeners, the Redis nodes' configuration file, and the refusal of a broker
storage formatted without the SCRAM user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchyard.cli.stack import profile as stack_profile
from switchyard.cli.stack.errors import StackError
from switchyard.cli.stack.full import environment, full_stack, local_settings
from switchyard.cli.stack.kafka import KafkaBroker
from switchyard.cli.stack.profile import StackProfile
from switchyard.cli.stack.redis import server_argv
from switchyard.cli.stack.redis_cluster import RedisClusterNode
from switchyard.cli.stack.secure import redis_cluster_options, redis_options, stack_secrets
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from tests.conftest import REPO
from tests.ports import free_port

SECURE = StackProfile(cluster=True, secure=True)


def _properties(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs}


def test_the_secrets_are_made_once_per_home_and_kept_private(tmp_path: Path) -> None:
    first = stack_secrets(tmp_path)
    again = stack_secrets(tmp_path)
    assert again == first
    assert first.kafka_password != first.redis_password
    assert len(first.kafka_password) == 48
    for path in (tmp_path / "stack-secrets.json", first.certs.server_key, first.certs.server_chain):
        assert path.stat().st_mode & 0o077 == 0, path
    saved = json.loads((tmp_path / "stack-secrets.json").read_text())
    assert saved == {"kafka_password": first.kafka_password, "redis_password": first.redis_password}


def test_local_settings_of_a_secured_stack_connect_with_tls_and_passwords(tmp_path: Path) -> None:
    local = local_settings(Settings(home=tmp_path, redis_port=30479), SECURE)
    secrets = stack_secrets(tmp_path)
    assert local.kafka_security_protocol == "SASL_SSL"
    assert local.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert local.kafka_sasl_username == "switchyard"
    assert local.kafka_sasl_password is not None
    assert local.kafka_sasl_password.get_secret_value() == secrets.kafka_password
    assert local.kafka_ssl_cafile == secrets.certs.ca_cert
    assert local.redis_url == "rediss://127.0.0.1:30479/0"
    assert local.redis_ssl_ca_file == secrets.certs.ca_cert
    options = kafka_options(local)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_plain_password"] == secrets.kafka_password
    # A child process rebuilds the same settings from its environment.
    env = environment(local)
    assert env["SWITCHYARD_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["SWITCHYARD_REDIS_PASSWORD"] == secrets.redis_password
    assert env["SWITCHYARD_KAFKA_SSL_CAFILE"] == str(secrets.certs.ca_cert)
    plain = local_settings(Settings(home=tmp_path / "plain"), StackProfile(cluster=True))
    assert plain.kafka_security_protocol == "PLAINTEXT"
    assert plain.redis_url.startswith("redis://")


def test_the_profile_records_secure(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    stack_profile.save(settings, SECURE)
    assert stack_profile.load(settings) == SECURE
    # A profile written before --secure existed reads as not secured.
    (settings.run_dir / "profile.json").write_text('{"cluster": true, "engines": 2}')
    assert stack_profile.load(settings) == StackProfile(cluster=True, engines=2)


def test_secured_brokers_listen_on_sasl_ssl_and_reach_controllers_over_mutual_tls(
    tmp_path: Path,
) -> None:
    settings = local_settings(Settings(home=tmp_path, kafka_port=30092), SECURE)
    infra, _ = full_stack(settings, SECURE)
    brokers = [c for c in infra.components if isinstance(c, KafkaBroker)]
    assert len(brokers) == 3
    for broker in brokers:
        props = _properties(broker._configure())
        assert props["listeners"] == (
            f"SASL_SSL://127.0.0.1:{broker.node.port},"
            f"CONTROLLER://127.0.0.1:{broker.node.controller_port}"
        )
        assert props["advertised.listeners"] == f"SASL_SSL://127.0.0.1:{broker.node.port}"
        assert props["inter.broker.listener.name"] == "SASL_SSL"
        assert props["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
        assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
        assert props["listener.name.controller.ssl.client.auth"] == "required"
        assert props["ssl.truststore.location"].endswith("/tls/ca.pem")
        assert (broker.home / "server.properties").stat().st_mode & 0o077 == 0


def test_secured_redis_nodes_serve_tls_only_with_their_passwords_in_a_private_file(
    tmp_path: Path,
) -> None:
    settings = local_settings(Settings(home=tmp_path, redis_port=30479), SECURE)
    secrets = stack_secrets(tmp_path)
    infra, _ = full_stack(settings, SECURE)
    nodes = [c for c in infra.components if isinstance(c, RedisClusterNode)]
    assert [n.url for n in nodes] == [f"rediss://127.0.0.1:{30479 + i}/0" for i in range(6)]
    lines = [*redis_options(secrets), *redis_cluster_options(secrets)]
    argv = server_argv("redis-server", 30479, tmp_path / "node", settings, secured=lines)
    conf = tmp_path / "node" / "secure.conf"
    assert argv[1] == str(conf.resolve())
    assert argv[argv.index("--port") + 1] == "0"
    assert argv[argv.index("--tls-port") + 1] == "30479"
    assert secrets.redis_password not in " ".join(argv)
    written = conf.read_text().splitlines()
    for line in (f"requirepass {secrets.redis_password}", f"masterauth {secrets.redis_password}",
                 "tls-cluster yes", "tls-replication yes", "tls-auth-clients no"):  # fmt: skip
        assert line in written
    assert conf.stat().st_mode & 0o077 == 0
    plain = server_argv("redis-server", 30479, tmp_path / "plain", settings)
    assert plain[plain.index("--port") + 1] == "30479"
    assert "--tls-port" not in plain


def test_a_broker_formatted_without_secure_is_refused_with_what_to_do(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        cache_home=REPO / ".switchyard" / "cache",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
    )
    plain = KafkaBroker(settings)
    (plain.home / "data").mkdir(parents=True)
    (plain.home / "data" / "meta.properties").write_text("formatted without SCRAM\n")
    secured = KafkaBroker(settings, secrets=stack_secrets(tmp_path))
    with pytest.raises(StackError, match=r"formatted without --secure, so it has no SCRAM user"):
        secured.start()
    assert secured.pid() is None
