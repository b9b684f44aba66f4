"""A half-configured secured connection stops any command at start-up, exit 2, one line
naming the variable to set (not a TLS or SASL failure at the first connect)."""

from __future__ import annotations

import pytest

from switchyard.cli.main import main


def test_sasl_without_a_password_stops_the_cli_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHYARD_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SWITCHYARD_KAFKA_SASL_USERNAME", "switchyard")
    monkeypatch.delenv("SWITCHYARD_KAFKA_SASL_PASSWORD", raising=False)
    assert main(["stack", "status"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "switchyard: SWITCHYARD_KAFKA_SASL_PASSWORD: Value error, must be set when "
        "SWITCHYARD_KAFKA_SECURITY_PROTOCOL is SASL_SSL"
    )


def test_an_unreadable_ca_file_stops_the_cli_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHYARD_REDIS_URL", "rediss://redis.example:6380/0")
    monkeypatch.setenv("SWITCHYARD_REDIS_SSL_CA_FILE", "/no/such/ca.pem")
    assert main(["stack", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("switchyard: SWITCHYARD_REDIS_SSL_CA_FILE='/no/such/ca.pem': ")
    assert "/no/such/ca.pem is not a readable file" in err
    assert len(err.strip().splitlines()) == 1
