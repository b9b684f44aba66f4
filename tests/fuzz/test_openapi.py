"""schemathesis over the bridge's OpenAPI document: every operation, with an Admin's,
a Member's and a machine's token and with invalid ones; no answer may be a 5xx or
break the documented schema (status codes, content type, body, headers).

In-process (ASGI) with the real engine beside it, over real Kafka and Redis.
``SWITCHYARD_FUZZ_EXAMPLES`` sets the examples per operation, the caller drawn for
each (default 25: a few hundred cases in well under a minute; a long run: 1000).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from switchyard.bridge.app import create_app
from switchyard.bridge.credentials import Actor
from switchyard.bridge.tokens import TokenSigner
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from tests.bridge.support import TOKEN_SECRET, kafka_workflow
from tests.conftest import Services
from tests.fuzz.conftest import EngineThread
from tests.security.stack import OTHER_TOKEN_SECRET, stack_settings, write_auth_file

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("SWITCHYARD_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
ACTORS = {
    "admin": Actor("admin", "user", "admin@example.com", "Admin"),
    "member": Actor("member", "user", "member@example.com", "Member", ("dev",)),
    "machine": Actor("machine", "machine", "ci-bot"),
}
CALLERS = ["admin", "member", "machine", "expired", "foreign", "garbage", "none"]


@pytest.fixture(scope="module")
def fuzz_settings(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    auth = write_auth_file(tmp_path_factory.mktemp("fuzz"))
    settings = stack_settings(services, f"fz{uuid.uuid4().hex[:8]}", auth, trigger_wait_ms=2000)
    asyncio.run(ensure_topics(settings))
    return settings


@pytest.fixture(scope="module")
def client(fuzz_settings: Settings, engine_thread: EngineThread) -> Iterator[Any]:
    """schemathesis' own ASGI client over the bridge, its lifespan open for the module."""
    app: Any = create_app(fuzz_settings)  # an ASGI app; asgi.ASGIApp's types are narrower
    with asgi.get_client(app) as session:
        # Something to find: a workflow and a run the generated ids may hit.
        token = {"Authorization": _authorization("admin") or ""}
        wf = f"fuzz-{uuid.uuid4().hex[:6]}"
        created = session.post("/v1/workflows", json=kafka_workflow(wf), headers=token)
        assert created.status_code == 201, created.text
        run = session.post(
            f"/v1/workflows/{wf}/runs", json={"inputs": {"name": "fz"}}, headers=token
        )
        assert run.status_code in (201, 202), run.text
        yield session
    asgi.shutdown_lifespans()


def _document() -> dict[str, Any]:
    """The OpenAPI document, from an app that is built but never started (no I/O)."""
    folder = Path(tempfile.mkdtemp(prefix="switchyard-openapi-"))
    try:
        auth = write_auth_file(folder)
        app = create_app(Settings(auth_file=auth, token_secret=SecretStr(TOKEN_SECRET)))
        return app.openapi()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _authorization(caller: str) -> str | None:
    if caller in ACTORS:
        return f"Bearer {TokenSigner(TOKEN_SECRET, 3600).issue(ACTORS[caller])}"
    if caller == "expired":
        return f"Bearer {TokenSigner(TOKEN_SECRET, 3600).issue(ACTORS['admin'], now=1.0)}"
    if caller == "foreign":
        return f"Bearer {TokenSigner(OTHER_TOKEN_SECRET, 3600).issue(ACTORS['admin'])}"
    if caller == "garbage":
        return "Bearer \u00ff\u00fe..not-a-token"
    return None


schema = schemathesis.openapi.from_dict(_document())


# The engine's thread (aiokafka's backoff jitter) uses the global `random` while
# hypothesis draws, which hypothesis reports as a strategy using `random`; it is not.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@schema.parametrize()
@schema.given(caller=st.sampled_from(CALLERS))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_no_schema_violations(
    case: Any, caller: str, client: Any, fuzz_counter: Counter[str]
) -> None:
    header = _authorization(caller)
    if header is None:
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
        headers: dict[str, str] = {}
    else:
        headers = {"Authorization": header}
    fuzz_counter["schemathesis"] += 1
    case.call_and_validate(
        session=client, base_url=f"http://{asgi.HOST}", headers=headers, checks=CHECKS
    )
