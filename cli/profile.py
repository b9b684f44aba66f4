"""Where the API commands find the API and their credentials.

Each of the URL, the client id and the client secret comes from the first of: its flag
(``--api-url``, ``--client-id``, ``--client-secret``), its environment variable
(``SWITCHYARD_API_URL``, ``SWITCHYARD_CLIENT_ID``, ``SWITCHYARD_CLIENT_SECRET``), the
profile ``--profile NAME`` (or ``SWITCHYARD_PROFILE``, else ``default``) of the file
``switchyard login`` writes. The file is ``~/.config/switchyard/profile.json`` (or
``$XDG_CONFIG_HOME/switchyard/profile.json``; ``SWITCHYARD_CLI_CONFIG`` names another),
mode 0600 since it holds a secret::

    {"profiles": {"default": {"apiUrl": "...", "clientId": "...", "clientSecret": "..."}}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchyard.cli.exits import NO_CREDENTIALS, CliError

CONFIG_ENV = "SWITCHYARD_CLI_CONFIG"
DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Profile:
    api_url: str
    client_id: str
    client_secret: str


def config_path(env: Mapping[str, str]) -> Path:
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "switchyard" / "profile.json"


def profile_name(flag: str | None, env: Mapping[str, str]) -> str:
    return flag or env.get("SWITCHYARD_PROFILE") or DEFAULT_PROFILE


def _stored(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"profiles": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: not a profile file ({exc})", NO_CREDENTIALS) from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise CliError(f"{path}: must hold an object with 'profiles'", NO_CREDENTIALS)
    return data


def resolve(
    *,
    api_url: str | None,
    client_id: str | None,
    client_secret: str | None,
    profile: str | None,
    env: Mapping[str, str],
    default_url: str,
) -> Profile:
    """The profile of one command; a missing credential is an error saying where to set it."""
    name = profile_name(profile, env)
    path = config_path(env)
    saved = _stored(path)["profiles"].get(name, {})
    if profile is not None and not saved:
        raise CliError(
            f"--profile: no profile {name!r} in {path} (write it with `switchyard login "
            f"--profile {name}`)",
            NO_CREDENTIALS,
        )
    url = api_url or env.get("SWITCHYARD_API_URL") or saved.get("apiUrl") or default_url
    cid = client_id or env.get("SWITCHYARD_CLIENT_ID") or saved.get("clientId")
    secret = client_secret or env.get("SWITCHYARD_CLIENT_SECRET") or saved.get("clientSecret")
    if not cid or not secret:
        raise CliError(
            "--client-id/--client-secret: no credentials (pass them, set SWITCHYARD_CLIENT_ID "
            "and SWITCHYARD_CLIENT_SECRET, or run `switchyard login`)",
            NO_CREDENTIALS,
        )
    return Profile(str(url).rstrip("/"), str(cid), str(secret))


def save(profile: Profile, name: str, env: Mapping[str, str]) -> Path:
    """Store ``profile`` under ``name`` (other profiles kept), readable by the user only."""
    path = config_path(env)
    data = _stored(path)
    data["profiles"][name] = {
        "apiUrl": profile.api_url,
        "clientId": profile.client_id,
        "clientSecret": profile.client_secret,
    }
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 before the secret is written: never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(data, file, indent=2)
    path.chmod(0o600)
    return path
