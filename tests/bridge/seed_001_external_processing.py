"""Seed 001's "Example: External processing", as the seed gives it.

Changed, and only these: the base URL (``PORT_API``, was https://api.getport.io),
``get_port_token`` (the seed leaves it undefined; here it asks the bridge's
``/v1/auth/access_token`` with client credentials, as Port's clients do) and
``perform_operation`` (the seed leaves it undefined). Type hints are added for mypy.
Kept as the seed wrote it, so ruff leaves this file alone (pyproject.toml).
"""

from typing import Any

import requests

PORT_API = "http://127.0.0.1:8080"
CLIENT_ID = ""
CLIENT_SECRET = ""


def get_port_token() -> str:
    response = requests.post(
        f"{PORT_API}/v1/auth/access_token",
        json={"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET},
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["accessToken"]
    return token


def perform_operation(payload: Any) -> dict[str, Any]:
    return {"resourceId": "abc123", "deployed": payload["service"]}


def process_webhook(webhook_data: dict[str, Any]) -> None:
    """Process a webhook and report back to Port"""

    workflow_run_id = webhook_data['context']['workflowRunId']
    node_run_id = webhook_data['context']['nodeRunId']

    # Log the start
    update_node_run(workflow_run_id, node_run_id, {
        "status": "IN_PROGRESS",
        "logs": [{
            "logLevel": "INFO",
            "log": "Processing started"
        }]
    })

    try:
        # Do the actual work
        result = perform_operation(webhook_data['payload'])

        # Report success
        update_node_run(workflow_run_id, node_run_id, {
            "status": "COMPLETED",
            "result": "SUCCESS",
            "output": result,
            "logs": [{
                "logLevel": "INFO",
                "log": f"Operation completed: {result}"
            }]
        })
    except Exception as e:
        # Report failure
        update_node_run(workflow_run_id, node_run_id, {
            "status": "COMPLETED",
            "result": "FAILED",
            "logs": [{
                "logLevel": "ERROR",
                "log": f"Operation failed: {str(e)}"
            }]
        })


def update_node_run(workflow_run_id: str, node_run_id: str, data: dict[str, Any]) -> None:
    """Update a node run via Port API"""
    response = requests.patch(
        f"{PORT_API}/v1/workflows/runs/{workflow_run_id}/nodes/{node_run_id}",
        headers={
            "Authorization": f"Bearer {get_port_token()}",
            "Content-Type": "application/json"
        },
        json=data
    )
    response.raise_for_status()
