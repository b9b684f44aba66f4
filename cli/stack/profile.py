"""Which shape of stack `stack up` brought up here, so `status` and `down` see the same.

Kept in ``<home>/run/profile.json``: a cluster's nodes have other names and pid files
than the single broker and Redis, ``--engines N`` other engine processes, and a
``--secure`` stack is reached over TLS with passwords.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from switchyard.cli.stack.errors import StackError
from switchyard.schemas.settings import Settings

MAX_ENGINES = 16


@dataclass(frozen=True)
class StackProfile:
    """``cluster``: three brokers and a six-node Redis Cluster; ``engines``: engine
    processes; ``secure``: TLS and passwords on every broker and Redis node."""

    cluster: bool = False
    engines: int = 1
    secure: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.engines <= MAX_ENGINES:
            raise StackError(f"--engines: must be 1 to {MAX_ENGINES} (got {self.engines})")


def load(settings: Settings) -> StackProfile:
    """The recorded profile, or the default one (single node, one engine)."""
    try:
        raw = json.loads((settings.run_dir / "profile.json").read_text())
        return StackProfile(
            cluster=bool(raw["cluster"]),
            engines=int(raw["engines"]),
            secure=bool(raw.get("secure", False)),
        )
    except (FileNotFoundError, ValueError, KeyError, TypeError, StackError):
        return StackProfile()


def save(settings: Settings, profile: StackProfile) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / "profile.json").write_text(json.dumps(asdict(profile)) + "\n")


def clear(settings: Settings) -> None:
    (settings.run_dir / "profile.json").unlink(missing_ok=True)
