"""Background processes the launcher owns, tracked by pid file.

``stop`` acts only on a pid whose command line still carries the marker the
launcher started it with, so a pid reused by the OS after a crash is never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessSpec:
    """How to start one long-lived process and how to recognise it afterwards."""

    name: str
    argv: Sequence[str]
    marker: str  # a string its /proc/<pid>/cmdline contains
    pid_file: Path
    log_file: Path
    env: Mapping[str, str] | None = None


def read_pid(spec: ProcessSpec) -> int | None:
    """The pid of ``spec``'s process if it is alive and still ours, else None."""
    try:
        pid = int(spec.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if is_alive(pid) and spec.marker in cmdline(pid) else None


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_alive(pid: int) -> bool:
    """True for a running process; a zombie counts as gone (and is reaped if it is our child)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in {"Z", "X"}:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def start(spec: ProcessSpec) -> int:
    """Start ``spec`` detached (its own session, survives the caller) and record its pid.

    posix_spawn rather than Popen: the process outlives any Popen object we could
    keep, and ``is_alive`` reaps it if it exits while we are still its parent.
    """
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if spec.env is None else spec.env)
    log_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    pid = os.posix_spawn(
        spec.argv[0],
        list(spec.argv),
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(spec.log_file), log_flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    spec.pid_file.write_text(f"{pid}\n")
    return pid


def stop(spec: ProcessSpec, grace_seconds: float = 20.0) -> bool:
    """SIGTERM, then SIGKILL after ``grace_seconds``; True if a process was stopped."""
    pid = read_pid(spec)
    if pid is None:
        spec.pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while is_alive(pid):
            time.sleep(0.05)
    spec.pid_file.unlink(missing_ok=True)
    return True


def resident_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def wait_port_free(host: str, port: int, within: float = 5.0) -> bool:
    """True once nothing listens on ``port``; a server killed a moment ago may still
    hold it while the kernel tears its sockets down."""
    deadline = time.monotonic() + within
    while port_open(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def listeners(port: int) -> str:
    """Who listens on ``port``, for an error message (empty if ``ss`` can't tell)."""
    try:
        result = subprocess.run(
            ["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip()


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` now (a candidate, not a reservation)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
