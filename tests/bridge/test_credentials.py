"""The auth file: hashed secrets, the dev config helper, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.bridge.credentials import Credentials, CredentialsError, write_dev_config


def test_dev_config_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    made = write_dev_config(path)
    assert all(c.client_secret not in path.read_text() for c in made)  # only hashes stored
    credentials = Credentials.load(path)
    admin = credentials.authenticate(made[0].client_id, made[0].client_secret)
    assert admin is not None
    assert admin.is_admin
    machine = credentials.authenticate(made[2].client_id, made[2].client_secret)
    assert machine is not None
    assert machine.is_machine
    assert credentials.authenticate(made[1].client_id, "wrong") is None


def test_missing_or_invalid_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="SWITCHYARD_AUTH_FILE"):
        Credentials.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"users": [{"email": "x"}]}')
    with pytest.raises(CredentialsError, match="invalid"):
        Credentials.load(bad)


def test_dev_secrets_never_start_like_a_command_line_option(tmp_path: Path) -> None:
    # A URL-safe secret may start with "-" (1 in 64): `switchyard login --client-secret
    # -x…` then fails as a missing argument. Dev secrets are hex.
    for round_ in range(20):
        for credential in write_dev_config(tmp_path / f"auth-{round_}.json"):
            assert len(credential.client_secret) == 48
            int(credential.client_secret, 16)
