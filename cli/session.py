"""How an API command runs: its profile, one authenticated client, errors as exit codes.

Each command is ``async def handler(client, args, console) -> exit code`` over
:class:`~switchyard.consumers.RunsClient` (the SDK's client: the token is fetched with
the profile's credentials and refreshed on a 401). :func:`api_command` turns one into
the ``(settings, args) -> int`` that ``switchyard.cli.main`` calls, and maps failures to
the codes of :mod:`switchyard.cli.exits`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from switchyard.cli import exits, profile
from switchyard.cli.exits import CliError
from switchyard.cli.output import Console
from switchyard.consumers import ApiError, RunsClient
from switchyard.schemas.settings import Settings

Handler = Callable[[RunsClient, argparse.Namespace, Console], Awaitable[int]]


def common_options() -> argparse.ArgumentParser:
    """The flags every API command takes (a parent parser of each)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("API and credentials (else environment, else profile)")
    group.add_argument("--api-url", help="the API's URL (SWITCHYARD_API_URL)")
    group.add_argument("--client-id", help="client id (SWITCHYARD_CLIENT_ID)")
    group.add_argument("--client-secret", help="client secret (SWITCHYARD_CLIENT_SECRET)")
    group.add_argument("--profile", help="profile of `switchyard login` (default: default)")
    common.add_argument(
        "-o", "--output", choices=("table", "json"), default="table",
        help="table for people (default), json: the API's JSON for scripts",
    )  # fmt: skip
    return common


def default_url(settings: Settings) -> str:
    return f"http://{settings.bridge_host}:{settings.bridge_port}"


def profile_of(settings: Settings, args: argparse.Namespace) -> profile.Profile:
    return profile.resolve(
        api_url=args.api_url,
        client_id=args.client_id,
        client_secret=args.client_secret,
        profile=args.profile,
        env=os.environ,
        default_url=default_url(settings),
    )


def describe(exc: BaseException, url: str) -> CliError:
    """One line and an exit code for what went wrong talking to the API."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ApiError):
        return CliError(f"{exc.message} ({exc.status_code} {exc.error})", exits.for_status(
            exc.status_code
        ))  # fmt: skip
    if isinstance(exc, httpx.TimeoutException):
        return CliError(f"the API at {url} did not answer in time ({exc!r})", exits.UNREACHABLE)
    if isinstance(exc, httpx.TransportError):
        return CliError(f"the API at {url} is unreachable ({exc})", exits.UNREACHABLE)
    raise exc


async def _run(handler: Handler, found: profile.Profile, args: Any, console: Console) -> int:
    async with RunsClient(found.api_url, found.client_id, found.client_secret) as client:
        return await handler(client, args, console)


def api_command(handler: Handler) -> Callable[[Settings, argparse.Namespace], int]:
    def command(settings: Settings, args: argparse.Namespace) -> int:
        console = Console(json=args.output == "json", out=sys.stdout, err=sys.stderr)
        url = args.api_url or default_url(settings)
        try:
            found = profile_of(settings, args)
            url = found.api_url
            return asyncio.run(_run(handler, found, args, console))
        except (CliError, ApiError, httpx.HTTPError) as exc:
            error = describe(exc, url)
            print(f"switchyard: {error}", file=sys.stderr, flush=True)
            return error.exit_code

    return command
