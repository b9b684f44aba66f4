"""``switchyard login`` and ``switchyard workflows …``.

switchyard login [--api-url URL] [--client-id ID] [--client-secret S] [--profile NAME]
switchyard workflows apply -f FILE     create it, or store a new version if it exists
switchyard workflows list
switchyard workflows get ID [--version N]
switchyard workflows delete ID
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from typing import Any

import httpx

from switchyard.cli import exits, profile
from switchyard.cli.documents import load_object
from switchyard.cli.exits import CliError
from switchyard.cli.output import Console, table
from switchyard.cli.session import api_command, default_url, describe
from switchyard.consumers import ApiError, RunsClient
from switchyard.schemas.settings import Settings


def _login_profile(settings: Settings, args: argparse.Namespace) -> profile.Profile:
    env = os.environ
    url = args.api_url or env.get("SWITCHYARD_API_URL") or default_url(settings)
    client_id = args.client_id or env.get("SWITCHYARD_CLIENT_ID")
    secret = args.client_secret or env.get("SWITCHYARD_CLIENT_SECRET")
    if not client_id and sys.stdin.isatty():
        client_id = input("client id: ").strip()
    if not secret and sys.stdin.isatty():
        secret = getpass.getpass("client secret: ")
    if not client_id or not secret:
        raise CliError("--client-id/--client-secret: both are needed to log in", exits.USAGE)
    return profile.Profile(url.rstrip("/"), client_id, secret)


async def _check(found: profile.Profile) -> None:
    async with RunsClient(found.api_url, found.client_id, found.client_secret) as client:
        await client.access_token()


def login(settings: Settings, args: argparse.Namespace) -> int:
    """Check the credentials (a token is issued for them), then save the profile."""
    try:
        found = _login_profile(settings, args)
        asyncio.run(_check(found))
    except (CliError, ApiError, httpx.HTTPError) as exc:
        error = describe(exc, args.api_url or default_url(settings))
        print(f"switchyard: {error}", file=sys.stderr, flush=True)
        return error.exit_code
    name = profile.profile_name(args.profile, os.environ)
    path = profile.save(found, name, os.environ)
    print(f"logged in to {found.api_url} as {found.client_id}; profile {name!r} saved in {path}")
    return 0


def _says(console: Console, answer: dict[str, Any], text: str) -> int:
    if console.json:
        console.document(answer)
    else:
        console.say(text)
    return 0


async def apply(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    definition = load_object("-f", args.file)
    identifier = definition.get("identifier")
    if not isinstance(identifier, str) or not identifier:
        raise CliError(f"-f {args.file}: identifier: required, a string", exits.USAGE)
    try:
        response = await client.request("POST", "/v1/workflows", json=definition)
        verb = "created"
    except ApiError as error:
        if error.status_code != 409:
            raise
        response = await client.request("PUT", f"/v1/workflows/{identifier}", json=definition)
        verb = "updated"
    answer = response.json()
    version = answer["workflow"].get("version")
    return _says(console, answer, f"workflow {identifier} {verb} (version {version})")


async def list_workflows(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    answer = (await client.request("GET", "/v1/workflows")).json()
    if console.json:
        console.document(answer)
        return 0
    rows = [
        (w["identifier"], w.get("version"), len(w.get("nodes", [])), w.get("title"))
        for w in answer["workflows"]
    ]
    header = ("WORKFLOW", "VERSION", "NODES", "TITLE")
    console.say(table(rows, header) if rows else "no workflows")
    return 0


async def get(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    params = {"version": args.version} if args.version is not None else None
    answer = (await client.request("GET", f"/v1/workflows/{args.id}", params=params)).json()
    if console.json:
        console.document(answer)
        return 0
    workflow = answer["workflow"]
    console.say(f"workflow {workflow['identifier']} version {workflow.get('version')}: "
                f"{workflow.get('title') or ''}".rstrip(": "))  # fmt: skip
    rows = [
        (n["identifier"], n.get("config", {}).get("type"), n.get("title"))
        for n in workflow.get("nodes", [])
    ]
    console.say(table(rows, ("NODE", "TYPE", "TITLE")))
    edges = [
        f"{c['sourceIdentifier']} -> {c['targetIdentifier']}"
        + (f" [{c['sourceOutletIdentifier']}]" if c.get("sourceOutletIdentifier") else "")
        for c in workflow.get("connections", [])
    ]
    if edges:
        console.say("connections: " + ", ".join(edges))
    return 0


async def delete(client: RunsClient, args: argparse.Namespace, console: Console) -> int:
    answer = (await client.request("DELETE", f"/v1/workflows/{args.id}")).json()
    return _says(console, answer, f"workflow {args.id} deleted (its runs stay readable)")


def add_workflow_commands(groups: Any, common: argparse.ArgumentParser) -> None:
    p = groups.add_parser("login", help="check credentials and save them as a profile")
    for flag, text in (("--api-url", "the API's URL (default: the local stack's)"),
                       ("--client-id", "client id (prompted on a terminal)"),
                       ("--client-secret", "client secret (prompted, hidden)"),
                       ("--profile", "the profile's name (default: default)")):  # fmt: skip
        p.add_argument(flag, help=text)
    p.set_defaults(run=login)
    workflows = groups.add_parser("workflows", help="define, list, read and delete workflows")
    cmds = workflows.add_subparsers(dest="command", required=True, metavar="ACTION")
    p = cmds.add_parser("apply", parents=[common], help="create or update (a new version)")
    p.add_argument("-f", "--file", required=True, help="the definition: JSON, or YAML; - stdin")
    p.set_defaults(run=api_command(apply))
    p = cmds.add_parser("list", parents=[common], help="the workflows the caller may see")
    p.set_defaults(run=api_command(list_workflows))
    p = cmds.add_parser("get", parents=[common], help="a workflow's definition")
    p.add_argument("id")
    p.add_argument("--version", type=int, help="a stored version (default: the newest)")
    p.set_defaults(run=api_command(get))
    p = cmds.add_parser("delete", parents=[common], help="delete a workflow")
    p.add_argument("id")
    p.set_defaults(run=api_command(delete))
