"""Port's integration framework, unchanged, against Switchyard: ``port-ocean`` from PyPI.

A session fixture makes a virtualenv for Ocean (``.switchyard/cache/ocean-venv``,
reused while its python works) with ``pip install --ignore-requires-python``: Ocean
declares Python >= 3.12 and runs on 3.11. The integration under ``ocean_app/`` (one
executor, ``echo``) runs in that venv as Ocean's integrations start (``debug.py``:
``port_ocean.run.run()``, what ``ocean sail`` calls), configured only as a user
would (environment variables: a machine credential, the bridge's URL, actions
processing on), with Ocean's default event listener (polling: it also resyncs, an
empty resync here) and with the actions-only one; its execution manager keeps its
default settings (a claim limit of 300, 60 s visibility, polls every 10 s). The bridge
is served by uvicorn on a free port beside the real engine, over real Kafka and Redis.
Ocean registers its integration, claims, acks, executes and completes the
INTEGRATION_ACTION node runs of real runs, and the runs end SUCCESS.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from switchyard.bridge.app import create_app
from switchyard.bridge.credentials import hash_secret
from switchyard.bridge.tokens import TokenSigner
from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from tests.conftest import REPO
from tests.helpers import until
from tests.ports import free_port, serving_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OCEAN_VENV = REPO / ".switchyard" / "cache" / "ocean-venv"
OCEAN_REQUIREMENT = "port-ocean>=0.56,<0.57"
APP = Path(__file__).parent / "ocean_app"
CLIENT_ID, CLIENT_SECRET = "ocean-machine", "ocean-machine-secret"
TOKEN_SECRET = "ocean-test-token-secret-0123456789"


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    probe = [str(python), "-c", "import port_ocean.ocean"]
    return subprocess.run(probe, capture_output=True, timeout=120).returncode == 0


def _say(line: str) -> None:
    print(f"[ocean venv] {line}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def ocean_python(pytestconfig: pytest.Config) -> Path:
    """The Ocean venv's python, made (with progress shown) when missing or broken."""
    python = OCEAN_VENV / "bin" / "python"
    if _works(python):
        return python
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        _say(f"creating {OCEAN_VENV} (python3 -m venv)")
        shutil.rmtree(OCEAN_VENV, ignore_errors=True)
        OCEAN_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["python3", "-m", "venv", str(OCEAN_VENV)], check=True, timeout=300)
        _say(f"pip install --ignore-requires-python '{OCEAN_REQUIREMENT}' (a minute or two)")
        pip = [str(python), "-m", "pip", "install", "--progress-bar", "off",
               "--ignore-requires-python", OCEAN_REQUIREMENT]  # fmt: skip
        subprocess.run(pip, check=True, timeout=1200, stdout=sys.__stderr__, stderr=sys.__stderr__)
        _say("installed")
    if not _works(python):
        raise RuntimeError(f"{python} can't import port_ocean after the install; see above")
    return python


@pytest.fixture
async def ocean_settings(settings: Settings, tmp_path: Path) -> Settings:
    await ensure_topics(settings)
    auth = tmp_path / "auth.json"
    auth.write_bytes(orjson.dumps({"machines": [
        {"name": "ocean", "clientId": CLIENT_ID, "clientSecretHash": hash_secret(CLIENT_SECRET)},
    ]}))  # fmt: skip
    return settings.model_copy(update={"auth_file": auth, "token_secret": SecretStr(TOKEN_SECRET)})


@pytest.fixture
async def bridge(ocean_settings: Settings) -> AsyncIterator[str]:
    """The real engine, and the bridge on a real port, as Ocean reaches it."""
    with JqTemplates(TemplateLimits.from_settings(ocean_settings)) as templates:
        async with (
            EngineService(ocean_settings, templates),
            serving_app(create_app(ocean_settings)) as url,
        ):
            yield url


@contextlib.contextmanager
def ocean_integration(
    python: Path, api_url: str, identifier: str, home: Path, listener: str | None
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """ocean_app started (copied out of the repo: Ocean writes beside it)."""
    app = home / "app"
    shutil.copytree(APP, app)
    log = home / "ocean.log"
    env = {
        **os.environ,
        "OCEAN__PORT__CLIENT_ID": CLIENT_ID,
        "OCEAN__PORT__CLIENT_SECRET": CLIENT_SECRET,
        "OCEAN__PORT__BASE_URL": api_url,
        "OCEAN__INTEGRATION__IDENTIFIER": identifier,
        "OCEAN__INTEGRATION__TYPE": "switchyard-echo",
        "OCEAN__ACTIONS_PROCESSOR__ENABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }
    if listener is not None:
        env["OCEAN__EVENT_LISTENER"] = orjson.dumps({"type": listener}).decode()
    # Ocean's own HTTP port, which nothing here calls. Still the pick-close-bind race
    # (Ocean's uvicorn exits if the port is taken meanwhile), left so: Ocean is third
    # party and says nothing we could wait on to tell a lost port from a slow start.
    command = [str(python), "debug.py", str(free_port())]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _workflow(identifier: str, installation: str, invocation: str = "echo") -> dict[str, Any]:
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"service": {"type": "string"}}, "required": ["service"]}}},
            {"identifier": "echo", "title": "Echo", "config": {
                "type": "INTEGRATION_ACTION", "installationId": installation,
                "integrationProvider": "switchyard-echo", "integrationInvocationType": invocation,
                "integrationActionExecutionProperties": {
                    "service": "{{ .outputs.trigger.service }}", "replicas": 2}}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "echo"}],
    }  # fmt: skip


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-6000:] if log.exists() else "(no output)"


@pytest.mark.timeout(1500)  # the first run installs Ocean
@pytest.mark.parametrize(
    "listener", [None, "ACTIONS_ONLY"], ids=["default-listener", "actions-only"]
)
async def test_an_ocean_integration_completes_integration_action_node_runs(
    ocean_python: Path, bridge: str, tmp_path: Path, listener: str | None
) -> None:
    installation = f"ocean-{uuid.uuid4().hex[:8]}"
    workflow = f"ocean-wf-{uuid.uuid4().hex[:8]}"
    signer = TokenSigner(TOKEN_SECRET, 3600)
    async with httpx.AsyncClient(base_url=bridge, timeout=30) as http:
        token = await http.post(
            "/v1/auth/access_token", json={"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
        )
        assert signer.client_id(token.json()["accessToken"]) == CLIENT_ID
        http.headers["Authorization"] = f"Bearer {token.json()['accessToken']}"
        created = await http.post("/v1/workflows", json=_workflow(workflow, installation))
        assert created.status_code == 201, created.text
        started = []
        for service in ("checkout", "billing", "search"):
            answer = await http.post(
                f"/v1/workflows/{workflow}/runs", json={"inputs": {"service": service}}
            )
            assert answer.status_code == 201, answer.text
            started.append(answer.json()["workflowRun"]["identifier"])
        # A node run of an action the integration has no executor for: Ocean acks it
        # and reports it FAILED.
        unhandled = f"{workflow}-unhandled"
        created = await http.post(
            "/v1/workflows", json=_workflow(unhandled, installation, "not-registered")
        )
        assert created.status_code == 201, created.text
        answer = await http.post(
            f"/v1/workflows/{unhandled}/runs", json={"inputs": {"service": "x"}}
        )
        assert answer.status_code == 201, answer.text
        started.append(answer.json()["workflowRun"]["identifier"])

        async def finished() -> list[dict[str, Any]]:
            if process.poll() is not None:
                raise AssertionError(f"Ocean exited ({process.returncode}):\n{_tail(log)}")
            runs = [(await http.get(f"/v1/workflows/runs/{r}")).json()["workflowRun"]
                    for r in started]  # fmt: skip
            return [r for r in runs if r["status"] == "COMPLETED"]

        with ocean_integration(ocean_python, bridge, installation, tmp_path, listener) as (
            process,
            log,
        ):
            try:
                done = await until(finished, lambda runs: len(runs) == len(started), within=90,
                                   interval=0.5)  # fmt: skip
            except AssertionError as error:
                raise AssertionError(f"{error}\n--- Ocean's output ---\n{_tail(log)}") from None
            integration = (await http.get(f"/v1/integration/{installation}")).json()
        assert [r["result"] for r in done] == ["SUCCESS"] * 3 + ["FAILED"], _tail(log)
        [refused] = done[3]["nodeRuns"][1:]
        assert (refused["status"], refused["result"]) == ("COMPLETED", "FAILED")
        assert "No executor registered for action type 'not-registered'" in [
            line["log"] for line in refused["nodeRunLogs"]
        ]
        for run, service in zip(done[:3], ("checkout", "billing", "search"), strict=True):
            [echo] = [nr for nr in run["nodeRuns"] if nr["node"]["identifier"] == "echo"]
            assert echo["output"]["properties"] == {"service": service, "replicas": 2}
            assert echo["output"]["workflowRunUrl"].startswith("https://echo.example.com/")
            assert echo["externalRunId"] == f"echo-{echo['identifier']}"
            assert echo["links"] == [echo["output"]["workflowRunUrl"]]
            assert echo["statusLabel"]["text"] == "Echoing"
            logs = [line["log"] for line in echo["nodeRunLogs"]]
            assert "echoing ['replicas', 'service']" in logs
            assert "echoed" in logs
        # Ocean registered itself at start-up, as it does against Port.
        assert integration["integration"]["installationAppType"] == "switchyard-echo"
        assert integration["integration"]["actionsProcessingEnabled"] is True
