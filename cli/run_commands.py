"""``switchyard runs …``: trigger, list, get, logs, watch, cancel and re-run runs.

switchyard runs trigger WORKFLOW [--input k=v ...] [--inputs-file F] [--node N] [--wait]
switchyard runs list [--workflow W] [--status S] [--result R] [--created-by WHO]
                     [--created-after T] [--created-before T] [--limit N] [--offset N]
switchyard runs get RUN
switchyard runs logs RUN [--follow]
switchyard runs watch RUN
switchyard runs cancel RUN [--force]
switchyard runs rerun RUN [--from NODE] [--input k=v ...] [--latest] [--force] [--wait]
"""

from __future__ import annotations

import argparse
from typing import Any

from switchyard.cli import follow
from switchyard.cli.documents import parse_inputs
from switchyard.cli.follow import Changes, Run
from switchyard.cli.output import Console, short_time, table
from switchyard.cli.session import api_command
from switchyard.consumers import RunsClient

_NODE_HEADER = ("NODE", "TYPE", "STATUS", "RESULT", "STARTED", "COMPLETED", "NODE RUN")
_RUN_HEADER = ("RUN", "WORKFLOW", "VERSION", "STATUS", "RESULT", "CREATED", "BY")


def run_table(run: Run) -> str:
    workflow = run.get("workflow") or {}
    head = (
        f"{follow.run_line(run)}  workflow {workflow.get('identifier')} "
        f"v{workflow.get('version')}  created {short_time(run.get('createdAt'))} "
        f"by {run.get('createdBy')}"
    )
    rows = [
        (
            nr.get("node", {}).get("identifier"),
            nr.get("nodeConfigType"),
            nr.get("status"),
            nr.get("result"),
            short_time(nr.get("createdAt")),
            short_time(nr.get("completedAt")),
            nr.get("identifier"),
        )
        for nr in run.get("nodeRuns", [])
    ]
    return head + "\n" + table(rows, _NODE_HEADER)


def _progress(console: Console) -> Any:
    """Node changes on stderr (a terminal only) while a run is awaited."""
    changes = Changes()

    def show(run: Run, _: dict[str, Any] | None) -> None:
        for node_run in changes.nodes(run):
            console.progress(f"  {follow.node_line(node_run)}")

    return show


async def _finish(client: RunsClient, run_id: str, args: Any, console: Console) -> int:
    """``--wait``: follow the run to its end, print it, exit by its result."""
    console.progress(f"waiting for {run_id} …")
    final = await follow.until_done(client, run_id, _progress(console), args.timeout)
    if console.json:
        console.document({"ok": True, "workflowRun": final})
    else:
        console.say(run_table(final))
    return follow.exit_code(final)


async def trigger(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    body: dict[str, Any] = {"inputs": parse_inputs(args.input, args.inputs_file) or {}}
    if args.node:
        body["nodeIdentifier"] = args.node
    response = await client.request("POST", f"/v1/workflows/{args.workflow}/runs", json=body)
    return await _started(client, response.json(), args, console, "triggered {run}")


async def rerun(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    body: dict[str, Any] = {"version": "latest" if args.latest else "pinned", "force": args.force}
    inputs = parse_inputs(args.input, args.inputs_file)
    if inputs is not None:
        body["inputs"] = inputs
    if args.from_node:
        body["fromNode"] = args.from_node
    response = await client.request("POST", f"/v1/workflows/runs/{args.run_id}/rerun", json=body)
    said = f"re-ran {args.run_id} as {{run}}"
    return await _started(client, response.json(), args, console, said)


async def _started(
    client: RunsClient, answer: dict[str, Any], args: argparse.Namespace, console: Console,
    said: str,
) -> int:  # fmt: skip
    """A run was started (trigger, re-run): wait for it with --wait, else report it."""
    run_id = answer["workflowRun"]["identifier"]
    if args.wait:
        return await _finish(client, run_id, args, console)
    if console.json:
        console.document(answer)
    else:
        console.say(f"{said.format(run=run_id)} (switchyard runs watch {run_id})")
    return 0


def _list_params(args: argparse.Namespace) -> list[tuple[str, str | int]]:
    params: list[tuple[str, str | int]] = [("limit", args.limit), ("offset", args.offset)]
    for name, values in (("workflowIdentifiers", args.workflow), ("statuses", args.status),
                         ("results", args.result), ("createdBy", args.created_by)):  # fmt: skip
        params += [(name, v) for v in values or []]
    for name, value in (("createdAfter", args.created_after),
                        ("createdBefore", args.created_before)):  # fmt: skip
        if value:
            params.append((name, value))
    return params


async def list_runs(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    answer = (await client.request("GET", "/v1/workflows/runs", params=_list_params(args))).json()
    if console.json:
        console.document(answer)
        return 0
    rows = [
        (
            r["identifier"],
            (r.get("workflow") or {}).get("identifier"),
            (r.get("workflow") or {}).get("version"),
            r.get("status"),
            r.get("result"),
            short_time(r.get("createdAt")),
            r.get("createdBy"),
        )
        for r in answer["workflowRuns"]
    ]
    console.say(table(rows, _RUN_HEADER) if rows else "no runs")
    return 0


async def get(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    answer = (await client.request("GET", f"/v1/workflows/runs/{args.run_id}")).json()
    if console.json:
        console.document(answer)
    else:
        console.say(run_table(answer["workflowRun"]))
    return 0


async def cancel(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    params = {"force": "true"} if args.force else None
    path = f"/v1/workflows/runs/{args.run_id}/cancel"
    answer = (await client.request("POST", path, params=params)).json()
    if console.json:
        console.document(answer)
    else:
        how = "force-cancelled" if args.force else "cancel requested (graceful)"
        console.say(f"{args.run_id}: {how}")
    return 0


def _log_out(console: Console, node_run: dict[str, Any], entry: dict[str, Any]) -> None:
    node = node_run.get("node", {}).get("identifier")
    if console.json:
        console.line({"nodeRunIdentifier": node_run["identifier"], "nodeIdentifier": node,
                      **entry})  # fmt: skip
        return
    tags = entry.get("tags") or {}
    tag_text = "  " + " ".join(f"{k}={v}" for k, v in tags.items()) if tags else ""
    console.say(f"{short_time(entry.get('createdAt'))}  {entry.get('logLevel')!s:<5}  "
                f"{node}  {entry.get('log')}{tag_text}")  # fmt: skip


async def logs(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    changes = Changes()

    def show(run: Run, _: dict[str, Any] | None) -> None:
        for node_run, entry in changes.logs(run):
            _log_out(console, node_run, entry)

    if not args.follow:
        show(await follow.get_run(client, args.run_id), None)
        return 0
    final = await follow.until_done(client, args.run_id, show, args.timeout)
    return follow.exit_code(final)


async def watch(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    """Each event of the run, from its first, as the node run's (or run's) new state;
    with ``--output json`` the events themselves, one per line."""
    changes = Changes()
    events = 0

    def show(run: Run, event: dict[str, Any] | None) -> None:
        nonlocal events
        if event is None:
            return
        events += 1
        if console.json:
            console.line(event)
        elif changes.moved(event):
            console.say(follow.event_line(event, run))

    final = await follow.until_done(client, args.run_id, show, args.timeout)
    if not events and not console.json:
        # A run completed long ago: its events have expired; the run has its end state.
        for node_run in final.get("nodeRuns", []):
            console.say(follow.node_line(node_run))
        console.say(follow.run_line(final))
    return follow.exit_code(final)


def _inputs_flags(parser: argparse.ArgumentParser) -> None:
    text = "an input (repeatable); VALUE is JSON when it parses (3, true, [1]), else text"
    parser.add_argument("--input", action="append", metavar="KEY=VALUE", help=text)
    parser.add_argument("--inputs-file", metavar="FILE", help="the inputs as a JSON object")


def _wait_flags(parser: argparse.ArgumentParser, wait: bool) -> None:
    if wait:
        text = "follow the run to its end; exit 1 FAILED, 3 CANCELLED"
        parser.add_argument("--wait", action="store_true", help=text)
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="give up waiting after this long (exit 8)")  # fmt: skip


def add_run_commands(groups: Any, common: argparse.ArgumentParser) -> None:
    runs = groups.add_parser("runs", help="trigger, list, watch, cancel and re-run runs")
    cmds = runs.add_subparsers(dest="command", required=True, metavar="ACTION")
    p = cmds.add_parser("trigger", parents=[common], help="start a run of a workflow")
    p.add_argument("workflow")
    _inputs_flags(p)
    p.add_argument("--node", help="the trigger node, when the workflow has several")
    _wait_flags(p, wait=True)
    p.set_defaults(run=api_command(trigger))
    p = cmds.add_parser("list", parents=[common], help="runs, newest first")
    for flag, what in (("--workflow", "workflow id"), ("--status", "IN_PROGRESS, CANCELLING, "
                       "COMPLETED"), ("--result", "SUCCESS, FAILED, CANCELLED"),
                       ("--created-by", "who triggered it")):  # fmt: skip
        p.add_argument(flag, action="append", help=f"{what} (repeatable)")
    p.add_argument("--created-after", metavar="ISO8601", help="created at or after")
    p.add_argument("--created-before", metavar="ISO8601", help="created at or before")
    p.add_argument("--limit", type=int, default=100, help="1-1000 (default 100)")
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(run=api_command(list_runs))
    for name, text, handler in (("get", "a run and its node runs", get),
                                ("logs", "a run's log lines", logs),
                                ("watch", "each node's state as it changes, live", watch),
                                ("cancel", "cancel a run", cancel)):  # fmt: skip
        p = cmds.add_parser(name, parents=[common], help=text)
        p.add_argument("run_id", metavar="RUN")
        if name == "logs":
            p.add_argument("-f", "--follow", action="store_true", help="new lines as they come")
        if name in ("logs", "watch"):
            _wait_flags(p, wait=False)
        if name == "cancel":
            p.add_argument("--force", action="store_true", help="end running node runs at once")
        p.set_defaults(run=api_command(handler))
    p = cmds.add_parser("rerun", parents=[common], help="re-run a run, whole or from a node")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--from", dest="from_node", metavar="NODE", help="re-run from this node")
    _inputs_flags(p)
    p.add_argument("--latest", action="store_true", help="the workflow's newest version")
    p.add_argument("--force", action="store_true", help="cancel the run first if in progress")
    _wait_flags(p, wait=True)
    p.set_defaults(run=api_command(rerun))
