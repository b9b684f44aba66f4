"""A minimal integration on Port's Ocean framework, written as its docs show.

One executor, ``echo``: for an INTEGRATION_ACTION node run with
``integrationInvocationType: echo`` it logs, reports the node run started (with an
external run id, a link and a status label), finds it again by that external id (as
a webhook processor of a real integration does), and completes it with the
execution properties as its output. It exports nothing: its resync (which Ocean's
default event listener runs at start-up) yields no entities. Started as Ocean
integrations are (``debug.py``), configured by Ocean's own settings (environment
variables); nothing of Ocean is patched.
"""

from __future__ import annotations

from typing import Any

# Ocean lives in its own virtualenv, not in the project's: the type checker of the
# project sees these names as untyped.
from port_ocean.context.ocean import ocean  # type: ignore[import-not-found]
from port_ocean.core.handlers.actions.abstract_executor import (  # type: ignore[import-not-found]
    AbstractExecutor,
)


class EchoExecutor(AbstractExecutor):  # type: ignore[misc]
    ACTION_NAME = "echo"
    WEBHOOK_PROCESSOR_CLASS = None
    WEBHOOK_PATH = ""

    async def is_close_to_rate_limit(self, run: Any) -> bool:
        return False

    async def get_remaining_seconds_until_rate_limit(self, run: Any) -> float:
        return 0.0

    async def execute(self, run: Any) -> None:
        properties = dict(run.execution_properties)
        await ocean.port_client.post_run_log(run, f"echoing {sorted(properties)}")
        external_id = f"echo-{run.id}"
        await ocean.port_client.update_run_started(
            run,
            link=f"https://echo.example.com/{run.id}",
            external_id=external_id,
            extra_output={"properties": properties},
            status_label="Echoing",
        )
        found = await ocean.port_client.find_run_by_external_id(external_id)
        if found is None or found.id != run.id:
            raise RuntimeError(f"lookup by external id {external_id} found {found!r}")
        await ocean.port_client.report_run_completed(
            found, success=properties.get("fail") is not True, message="echoed"
        )


@ocean.on_resync()  # type: ignore[untyped-decorator]
async def on_resync(kind: str) -> list[dict[str, Any]]:
    return []


ocean.register_action_executor(EchoExecutor())
