"""``switchyard runs …`` against the real engine and API: a KAFKA node is completed by
the test with a PATCH, as the external system would, while the command waits or watches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchyard.cli import exits
from switchyard.consumers import RunsClient
from switchyard.engine.service import EngineService
from switchyard.schemas.settings import Settings
from tests.cli.conftest import Cli, Served, bridge
from tests.cli.test_workflows import definition
from tests.helpers import until

pytestmark = pytest.mark.integration


@pytest.fixture
async def workflow(cli: Cli, engine: EngineService, wf_id: str, tmp_path: Path) -> str:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(definition(wf_id)))
    assert (await cli("workflows", "apply", "-f", str(path))).code == 0
    return wf_id


async def deploy_node(admin: RunsClient, run_id: str) -> str:
    """The KAFKA node run's id, once it is IN_PROGRESS (waiting for the external system)."""

    async def waiting() -> list[str]:
        run = await admin.get_run(run_id)
        return [nr.identifier for nr in run.node_runs if nr.node.identifier == "deploy"
                and nr.status == "IN_PROGRESS"]  # fmt: skip

    [node_run] = await until(waiting)
    return node_run


async def complete(
    admin: RunsClient, node_run: str, result: str = "SUCCESS", log: str = "done"
) -> None:
    body = {"status": "COMPLETED", "result": result, "output": {"url": "https://x.example"},
            "logs": [{"logLevel": "INFO", "log": log}]}  # fmt: skip
    await admin.request("PATCH", f"/v1/workflows/nodes/runs/{node_run}", json=body)


async def trigger(cli: Cli, workflow: str, *inputs: str) -> str:
    got = await cli("runs", "trigger", workflow, *inputs, "-o", "json")
    assert got.code == 0, got.err
    run_id: str = json.loads(got.out)["workflowRun"]["identifier"]
    return run_id


async def test_trigger_parses_inputs_and_refusals_name_the_field(
    cli: Cli, workflow: str, admin: RunsClient, tmp_path: Path
) -> None:
    run_id = await trigger(cli, workflow, "--input", "name=checkout", "--input", "count=3")
    run = (await admin.request("GET", f"/v1/workflows/runs/{run_id}")).json()["workflowRun"]
    assert run["variables"]["outputs"]["trigger"] == {"name": "checkout", "count": 3}

    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"name": "from-file", "count": 1}))
    text = await cli(
        "runs", "trigger", workflow, "--inputs-file", str(inputs), "--input", "count=2"
    )
    assert text.code == 0, text.err
    assert text.out.startswith("triggered wfr_")

    refused = await cli("runs", "trigger", workflow, "--input", "name=x", "--input", "count=9")
    assert refused.code == exits.REFUSED
    assert refused.err.count("\n") == 1
    assert "inputs.name" in refused.err or "inputs.count" in refused.err
    malformed = await cli("runs", "trigger", workflow, "--input", "name")
    assert malformed.code == exits.USAGE
    assert malformed.err == "switchyard: --input: must be key=value (got 'name')\n"
    unknown = await cli("runs", "trigger", "no-such-workflow-cli", "--input", "name=xx")
    assert unknown.code == exits.NOT_FOUND


async def test_trigger_wait_exits_by_the_runs_result(
    cli: Cli, workflow: str, admin: RunsClient
) -> None:
    for result, code in (("SUCCESS", exits.OK), ("FAILED", exits.RUN_FAILED)):
        waiting = cli.start("runs", "trigger", workflow, "--input", "name=waits", "--wait",
                            "-o", "json")  # fmt: skip
        runs = await until(lambda: admin.list_runs(workflow_identifiers=[workflow],
                                                   statuses=["IN_PROGRESS"]))  # fmt: skip
        await complete(admin, await deploy_node(admin, runs[0].identifier), result)
        got = await waiting.result()
        assert got.code == code, got.err
        final = json.loads(got.out)["workflowRun"]
        assert (final["status"], final["result"]) == ("COMPLETED", result)

    # A run that does not end in time: exit 8 naming --timeout.
    late = await cli("runs", "trigger", workflow, "--input", "name=late", "--wait",
                     "--timeout", "0.5")  # fmt: skip
    assert late.code == exits.TIMED_OUT
    assert late.err.startswith("switchyard: --timeout: run wfr_")


async def test_list_filters_get_and_their_errors(
    cli: Cli, workflow: str, admin: RunsClient
) -> None:
    done = await trigger(cli, workflow, "--input", "name=first")
    await complete(admin, await deploy_node(admin, done), "FAILED")
    await until(lambda: admin.get_run(done), lambda r: r.status == "COMPLETED")
    open_run = await trigger(cli, workflow, "--input", "name=second")

    async def ids(*flags: str) -> list[str]:
        got = await cli("runs", "list", "--workflow", workflow, *flags, "-o", "json")
        assert got.code == 0, got.err
        return [r["identifier"] for r in json.loads(got.out)["workflowRuns"]]

    assert await ids() == [open_run, done]  # newest first
    assert await ids("--status", "COMPLETED") == [done]
    assert await ids("--result", "FAILED") == [done]
    assert await ids("--status", "IN_PROGRESS", "--status", "CANCELLING") == [open_run]
    assert await ids("--limit", "1", "--offset", "1") == [done]
    assert await ids("--created-by", "admin@switchyard.local") == [open_run, done]
    assert await ids("--created-after", "2999-01-01T00:00:00Z") == []
    assert await ids("--created-before", "2999-01-01T00:00:00Z") == [open_run, done]
    table = (await cli("runs", "list", "--workflow", workflow)).out.splitlines()
    assert table[0].split() == ["RUN", "WORKFLOW", "VERSION", "STATUS", "RESULT", "CREATED", "BY"]
    assert table[2].split()[:5] == [done, workflow, "1", "COMPLETED", "FAILED"]

    got = await cli("runs", "get", done, "-o", "json")
    run = json.loads(got.out)["workflowRun"]
    assert run["identifier"] == done
    assert {nr["node"]["identifier"] for nr in run["nodeRuns"]} == {"trigger", "deploy"}
    shown = (await cli("runs", "get", done)).out
    assert shown.startswith(f"run {done} COMPLETED FAILED  workflow {workflow} v1")
    assert any(line.split()[:4] == ["deploy", "KAFKA", "COMPLETED", "FAILED"]
               for line in shown.splitlines())  # fmt: skip

    bad = await cli("runs", "list", "--status", "DONE")
    assert bad.code == exits.REFUSED
    assert "statuses" in bad.err
    assert (await cli("runs", "get", "wfr_0000000000000000")).code == exits.NOT_FOUND
    malformed = await cli("runs", "get", "not-a-run")
    assert malformed.code == exits.REFUSED
    assert malformed.err.count("\n") == 1


async def test_watch_prints_each_node_as_it_changes_and_exits_by_result(
    cli: Cli, workflow: str, admin: RunsClient
) -> None:
    run_id = await trigger(cli, workflow, "--input", "name=watched")
    watching = cli.start("runs", "watch", run_id)
    events = cli.start("runs", "watch", run_id, "-o", "json")
    node_run = await deploy_node(admin, run_id)
    # Live: the node's IN_PROGRESS is shown while it waits, before it is completed.
    await watching.printed(f"deploy (KAFKA) IN_PROGRESS  {node_run}")
    await events.printed('"kind":"nodeRun.created"')
    await admin.request("PATCH", f"/v1/workflows/nodes/runs/{node_run}", json={
        "logs": [{"logLevel": "INFO", "log": "halfway"}]})  # fmt: skip
    await complete(admin, node_run, "FAILED")
    got = await watching.result()
    assert got.code == exits.RUN_FAILED, got.err
    lines = [line.split(maxsplit=1)[1] for line in got.out.splitlines()]
    assert lines == [
        f"run {run_id} IN_PROGRESS",
        *[line for line in lines if line.startswith("trigger (SELF_SERVE_TRIGGER)")],
        f"deploy (KAFKA) IN_PROGRESS  {node_run}",
        f"deploy (KAFKA) COMPLETED FAILED  {node_run}",
        f"run {run_id} COMPLETED FAILED",
    ]  # the log-only update printed nothing

    as_json = await events.result()
    assert as_json.code == exits.RUN_FAILED
    seen = [json.loads(line) for line in as_json.out.splitlines()]
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))  # from the first, no gap
    assert seen[-1]["kind"] == "run.completed"
    assert {e["runId"] for e in seen} == {run_id}

    # A completed run: the stream replays its events and ends at once.
    again = await cli("runs", "watch", run_id)
    assert again.code == exits.RUN_FAILED
    assert again.out == got.out
    assert (await cli("runs", "watch", "wfr_0000000000000000")).code == exits.NOT_FOUND


async def test_logs_and_follow_print_each_line_once_in_order(
    cli: Cli, workflow: str, admin: RunsClient
) -> None:
    run_id = await trigger(cli, workflow, "--input", "name=logged")
    following = cli.start("runs", "logs", run_id, "--follow")
    node_run = await deploy_node(admin, run_id)
    path = f"/v1/workflows/nodes/runs/{node_run}/logs"
    for text in ("step one", "step two"):
        entry = {"logLevel": "INFO", "log": text, "tags": {"k": "v"}}
        await admin.request("POST", path, json={"logs": [entry]})
        await following.printed(text)  # shown as it comes, before the run ends
    await complete(admin, node_run, log="all done")
    got = await following.result()
    assert got.code == exits.OK, got.err
    mine = [line.split(maxsplit=4) for line in got.out.splitlines()]
    assert [m[3:] for m in mine if m[3] == "deploy"][-3:] == [
        ["deploy", "step one  k=v"], ["deploy", "step two  k=v"], ["deploy", "all done"]
    ]  # fmt: skip
    assert len({line for line in got.out.splitlines()}) == len(got.out.splitlines())  # once each

    plain = await cli("runs", "logs", run_id, "-o", "json")
    entries = [json.loads(line) for line in plain.out.splitlines()]
    deploy = [e["log"] for e in entries if e["nodeIdentifier"] == "deploy"]
    assert deploy[-3:] == ["step one", "step two", "all done"]
    assert all(e["nodeRunIdentifier"] for e in entries)


async def test_cancel_and_rerun(cli: Cli, workflow: str, admin: RunsClient) -> None:
    run_id = await trigger(cli, workflow, "--input", "name=cancelled")
    await deploy_node(admin, run_id)
    watching = cli.start("runs", "watch", run_id)
    cancelled = await cli("runs", "cancel", run_id, "--force", "-o", "json")
    assert cancelled.code == 0, cancelled.err
    assert json.loads(cancelled.out) == {"ok": True}
    got = await watching.result()
    assert got.code == exits.RUN_CANCELLED
    again = await cli("runs", "cancel", run_id)
    assert again.code == exits.REFUSED
    assert "already COMPLETED" in again.err

    rerun = await cli("runs", "rerun", run_id, "--input", "name=again", "-o", "json")
    assert rerun.code == 0, rerun.err
    new = json.loads(rerun.out)["workflowRun"]
    assert new["rerunOf"] == {"identifier": run_id, "fromNode": None}
    await complete(admin, await deploy_node(admin, new["identifier"]))
    await until(lambda: admin.get_run(new["identifier"]), lambda r: r.status == "COMPLETED")

    waiting = cli.start(
        "runs", "rerun", new["identifier"], "--from", "deploy", "--wait", "-o", "json"
    )
    runs = await until(lambda: admin.list_runs(workflow_identifiers=[workflow],
                                               statuses=["IN_PROGRESS"]))  # fmt: skip
    await complete(admin, await deploy_node(admin, runs[0].identifier))
    got = await waiting.result()
    assert got.code == exits.OK, got.err
    final = json.loads(got.out)["workflowRun"]
    assert final["rerunOf"] == {"identifier": new["identifier"], "fromNode": "deploy"}
    assert final["result"] == "SUCCESS"


async def test_watch_resumes_across_a_bridge_restart_without_a_loss_or_a_repeat(
    cli: Cli, workflow: str, topics: Settings, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher's stream is cut by a restart of the API it talks to; it reconnects
    with Last-Event-ID and shows each change once, the ones made while it was away too."""
    async with bridge(topics) as port:
        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("SWITCHYARD_API_URL", url)
        run_id = await trigger(cli, workflow, "--input", "name=restarted")
        watching = cli.start("runs", "watch", run_id)
        events = cli.start("runs", "watch", run_id, "-o", "json")
        async with RunsClient(url, "dev-admin", served.secrets["dev-admin"]) as admin:
            node_run = await deploy_node(admin, run_id)
        await watching.printed(f"deploy (KAFKA) IN_PROGRESS  {node_run}")
        await events.printed('"kind":"nodeRun.created"')
    async with (
        bridge(topics, port),
        RunsClient(url, "dev-admin", served.secrets["dev-admin"]) as admin,
    ):
        await complete(admin, node_run)
        got = await watching.result()
        as_json = await events.result()
    assert got.code == exits.OK, got.err
    lines = [line.split(maxsplit=1)[1] for line in got.out.splitlines()]
    assert len(lines) == len(set(lines))
    assert lines[-2:] == [
        f"deploy (KAFKA) COMPLETED SUCCESS  {node_run}",
        f"run {run_id} COMPLETED SUCCESS",
    ]
    # Every event exactly once, in order: the reconnect sent Last-Event-ID.
    seqs = [json.loads(line)["seq"] for line in as_json.out.splitlines()]
    assert seqs == list(range(1, len(seqs) + 1))
