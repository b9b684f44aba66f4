"""``switchyard login`` and ``switchyard workflows …`` against the real API."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from switchyard.cli import exits
from tests.cli.conftest import Cli, Served
from tests.ports import free_port

pytestmark = pytest.mark.integration


def definition(wf_id: str, title: str = "CLI test") -> dict[str, Any]:
    return {
        "identifier": wf_id,
        "title": title,
        "nodes": [
            {"identifier": "trigger", "title": "Start", "config": {
                "type": "SELF_SERVE_TRIGGER",
                "userInputs": {"properties": {"name": {"type": "string", "minLength": 2},
                                              "count": {"type": "number", "maximum": 5}},
                               "required": ["name"]},
            }},
            {"identifier": "deploy", "title": "Deploy", "config": {
                "type": "KAFKA", "payload": {"name": "{{ .outputs.trigger.name }}"},
            }},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "deploy"}],
    }  # fmt: skip


YAML = """\
identifier: {wf_id}
title: second
nodes:
  - identifier: trigger
    title: Start
    config:
      type: SELF_SERVE_TRIGGER
      userInputs:
        properties:
          name: {{type: string, minLength: 2}}
        required: [name]
  - identifier: deploy
    title: Deploy
    config: {{type: KAFKA, payload: {{name: "{{{{ .outputs.trigger.name }}}}"}}}}
connections:
  - {{sourceIdentifier: trigger, targetIdentifier: deploy}}
"""


async def test_login_checks_and_saves_a_private_profile_that_later_commands_use(
    cli: Cli, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SWITCHYARD_API_URL", "SWITCHYARD_CLIENT_ID", "SWITCHYARD_CLIENT_SECRET"):
        monkeypatch.delenv(name)
    secret = served.secrets["dev-machine"]
    profile = tmp_path / "profile.json"

    refused = await cli("login", "--api-url", served.url, "--client-id", "dev-machine",
                        "--client-secret", "wrong")  # fmt: skip
    assert refused.code == exits.AUTH
    assert refused.err.count("\n") == 1
    assert refused.err.startswith("switchyard: ")
    assert not profile.exists()

    done = await cli("login", "--api-url", served.url, "--client-id", "dev-machine",
                     "--client-secret", secret, "--profile", "ci")  # fmt: skip
    assert done.code == 0, done.err
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    saved = json.loads(profile.read_text())["profiles"]["ci"]
    assert saved == {"apiUrl": served.url, "clientId": "dev-machine", "clientSecret": secret}

    # No flags, no environment: the named profile, or SWITCHYARD_PROFILE, is enough.
    listed = await cli("workflows", "list", "--profile", "ci", "-o", "json")
    assert listed.code == 0, listed.err
    assert json.loads(listed.out)["ok"] is True
    monkeypatch.setenv("SWITCHYARD_PROFILE", "ci")
    assert (await cli("runs", "list", "--limit", "1")).code == 0

    missing = await cli("workflows", "list", "--profile", "nope")
    assert missing.code == exits.NO_CREDENTIALS
    assert "--profile" in missing.err
    assert "switchyard login --profile nope" in missing.err


async def test_without_credentials_or_api_the_exit_code_says_which(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWITCHYARD_CLIENT_SECRET")
    none = await cli("runs", "list")
    assert none.code == exits.NO_CREDENTIALS
    assert none.err.startswith("switchyard: --client-id/--client-secret: no credentials")

    down = await cli("runs", "list", "--client-secret", "x",
                     "--api-url", f"http://127.0.0.1:{free_port()}")  # fmt: skip
    assert down.code == exits.UNREACHABLE
    assert "unreachable" in down.err
    assert down.err.count("\n") == 1

    usage = (await cli("runs", "list", "--limit", "many")).code
    assert usage == exits.USAGE


async def test_apply_creates_then_versions_and_get_list_delete_read_it_back(
    cli: Cli, served: Served, wf_id: str, tmp_path: Path
) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(definition(wf_id, "first")))
    created = await cli("workflows", "apply", "-f", str(path))
    assert created.code == 0, created.err
    assert created.out.strip() == f"workflow {wf_id} created (version 1)"

    # YAML too (PyYAML is there in the dev environment), and a second apply is a version.
    yaml_path = tmp_path / "wf.yaml"
    yaml_path.write_text(YAML.format(wf_id=wf_id))
    updated = await cli("workflows", "apply", "-f", str(yaml_path), "-o", "json")
    assert updated.code == 0, updated.err
    body = json.loads(updated.out)
    assert body["ok"] is True
    assert body["workflow"]["version"] == 2

    listed = json.loads((await cli("workflows", "list", "-o", "json")).out)
    mine = [w for w in listed["workflows"] if w["identifier"] == wf_id]
    assert [(w["version"], w["title"]) for w in mine] == [(2, "second")]
    table = (await cli("workflows", "list")).out
    assert any(line.split()[:3] == [wf_id, "2", "2"] for line in table.splitlines())

    newest = json.loads((await cli("workflows", "get", wf_id, "-o", "json")).out)
    assert newest["workflow"]["title"] == "second"
    first = json.loads((await cli("workflows", "get", wf_id, "--version", "1", "-o", "json")).out)
    assert (first["workflow"]["version"], first["workflow"]["title"]) == (1, "first")
    shown = (await cli("workflows", "get", wf_id)).out
    assert ["deploy", "KAFKA", "Deploy"] in [line.split() for line in shown.splitlines()]
    assert "connections: trigger -> deploy" in shown

    deleted = await cli("workflows", "delete", wf_id)
    assert deleted.code == 0
    assert "deleted" in deleted.out
    gone = await cli("workflows", "get", wf_id)
    assert gone.code == exits.NOT_FOUND
    assert gone.err == f"switchyard: workflow {wf_id} not found (404 not_found)\n"


async def test_apply_refusals_name_the_field(
    cli: Cli, served: Served, wf_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = definition(wf_id)
    bad["connections"][0]["targetIdentifier"] = "nowhere"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    refused = await cli("workflows", "apply", "-f", str(path))
    assert refused.code == exits.REFUSED
    assert refused.err.count("\n") == 1
    assert "nowhere" in refused.err

    (tmp_path / "broken.json").write_text("{")
    broken = await cli("workflows", "apply", "-f", str(tmp_path / "broken.json"))
    assert broken.code == exits.USAGE
    assert "not valid JSON" in broken.err

    path.write_text(json.dumps(definition(wf_id)))
    monkeypatch.setenv("SWITCHYARD_CLIENT_ID", "dev-member")
    monkeypatch.setenv("SWITCHYARD_CLIENT_SECRET", served.secrets["dev-member"])
    forbidden = await cli("workflows", "apply", "-f", str(path))
    assert forbidden.code == exits.AUTH
    assert "may not edit workflows" in forbidden.err
