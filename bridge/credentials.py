"""Who may call the bridge: users and machine credentials, from a JSON file.

The file (``settings.auth_path``) holds only hashes of the client secrets::

    {"users": [{"email": "ada@example.com", "role": "Admin", "teams": ["platform"],
                "clientId": "ada", "clientSecretHash": "scrypt$16384$8$1$<salt>$<hash>"}],
     "machines": [{"name": "ci", "clientId": "ci-bot", "clientSecretHash": "scrypt$..."}]}

:func:`write_dev_config` writes one Admin, one Member and one machine credential with
fresh random secrets and returns them (``switchyard stack up`` prints them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

Role = Literal["Admin", "Member"]

_N, _R, _P = 2**14, 8, 1


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64); stored instead of the secret."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        got = hashlib.scrypt(
            secret.encode(),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


class _Entry(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid")

    client_id: str = Field(min_length=1)
    client_secret_hash: str = Field(min_length=1)


class UserEntry(_Entry):
    email: str = Field(min_length=3)
    role: Role = "Member"
    teams: list[str] = Field(default_factory=list)


class MachineEntry(_Entry):
    name: str = Field(min_length=1)


class AuthFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[UserEntry] = Field(default_factory=list)
    machines: list[MachineEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Actor:
    """The caller of a request: a user or a machine credential."""

    client_id: str
    kind: Literal["user", "machine"]
    # What runs record as ``createdBy``: the user's email, or the machine's name.
    name: str
    role: Role | None = None
    teams: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_machine(self) -> bool:
        return self.kind == "machine"

    @property
    def is_admin(self) -> bool:
        return self.role == "Admin"

    @property
    def is_privileged(self) -> bool:
        """Admins and machine credentials: may run, view, update and claim anything."""
        return self.is_machine or self.is_admin

    def is_named(self, names: list[str]) -> bool:
        """Whether a permissions ``users`` list names this actor (by email or client id)."""
        return self.name in names or self.client_id in names


class CredentialsError(Exception):
    """The auth file is missing or invalid; the message says which and how to fix it."""


class Credentials:
    """The actors of the auth file, by client id."""

    def __init__(self, config: AuthFile) -> None:
        self._entries: dict[str, tuple[Actor, str]] = {}
        for user in config.users:
            actor = Actor(user.client_id, "user", user.email, user.role, tuple(user.teams))
            self._add(actor, user.client_secret_hash)
        for machine in config.machines:
            self._add(Actor(machine.client_id, "machine", machine.name), machine.client_secret_hash)

    def _add(self, actor: Actor, secret_hash: str) -> None:
        if actor.client_id in self._entries:
            raise CredentialsError(f"clientId {actor.client_id!r} appears twice")
        self._entries[actor.client_id] = (actor, secret_hash)

    @classmethod
    def load(cls, path: Path) -> Credentials:
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise CredentialsError(
                f"cannot read the auth file {path} ({error.strerror}); set SWITCHYARD_AUTH_FILE "
                "or write a dev one with switchyard.bridge.credentials.write_dev_config"
            ) from None
        try:
            return cls(AuthFile.model_validate_json(raw))
        except ValidationError as error:
            raise CredentialsError(f"auth file {path} is invalid: {error}") from None

    def authenticate(self, client_id: str, client_secret: str) -> Actor | None:
        entry = self._entries.get(client_id)
        if entry is None or not check_secret(client_secret, entry[1]):
            return None
        return entry[0]

    def actor(self, client_id: str) -> Actor | None:
        entry = self._entries.get(client_id)
        return entry[0] if entry else None

    def secret_hash(self, client_id: str) -> str | None:
        """The stored hash of the client id's secret (what a verified secret is tied to)."""
        entry = self._entries.get(client_id)
        return entry[1] if entry else None


class VerifiedSecrets:
    """Secrets that passed the scrypt check in the last ``ttl_s`` seconds, by client id.

    Only an HMAC-SHA256 of the secret is kept, under a key made for this object (one per
    bridge process), never the secret. An entry is tied to the stored hash it was
    verified against: a credential whose hash changed misses. One entry per client id
    (its latest success), so the cache is no bigger than the auth file. Used from the
    event loop only.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: dict[str, tuple[bytes, str, float]] = {}

    def _digest(self, secret: str) -> bytes:
        return hmac.new(self._key, secret.encode(), hashlib.sha256).digest()

    def holds(self, client_id: str, secret: str, secret_hash: str) -> bool:
        """Whether this secret of this client id was verified against ``secret_hash``
        within the last ``ttl_s`` seconds."""
        entry = self._entries.get(client_id)
        if entry is None:
            return False
        digest, verified_hash, until = entry
        if self._clock() >= until or verified_hash != secret_hash:
            del self._entries[client_id]
            return False
        return hmac.compare_digest(digest, self._digest(secret))

    def remember(self, client_id: str, secret: str, secret_hash: str) -> None:
        if self.ttl_s > 0:
            until = self._clock() + self.ttl_s
            self._entries[client_id] = (self._digest(secret), secret_hash, until)


@dataclass(frozen=True)
class DevCredential:
    client_id: str
    client_secret: str
    who: str


def _dev_secret() -> str:
    # Hex, not URL-safe base64: a secret starting with "-" is taken for an option by
    # every command line it is pasted into (switchyard login --client-secret -x...).
    return secrets.token_hex(24)


def write_dev_config(path: Path) -> list[DevCredential]:
    """Write an auth file with an Admin, a Member and a machine; return their secrets."""
    made = [
        DevCredential("dev-admin", _dev_secret(), "admin@switchyard.local (Admin)"),
        DevCredential("dev-member", _dev_secret(), "member@switchyard.local (Member)"),
        DevCredential("dev-machine", _dev_secret(), "machine credential"),
    ]
    admin, member, machine = made
    config = {
        "users": [
            {"email": "admin@switchyard.local", "role": "Admin", "teams": [],
             "clientId": admin.client_id, "clientSecretHash": hash_secret(admin.client_secret)},
            {"email": "member@switchyard.local", "role": "Member", "teams": ["dev"],
             "clientId": member.client_id, "clientSecretHash": hash_secret(member.client_secret)},
        ],
        "machines": [
            {"name": "dev-machine", "clientId": machine.client_id,
             "clientSecretHash": hash_secret(machine.client_secret)},
        ],
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    path.chmod(0o600)
    return made
