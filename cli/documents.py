"""Reading what the user hands the CLI: a JSON (or YAML) file, ``key=value`` inputs."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from switchyard.cli import exits
from switchyard.cli.exits import CliError


def _yaml(text: str, where: str) -> Any:
    # PyYAML is not a dependency of ours; it is used when something else installed it.
    try:
        yaml: Any = importlib.import_module("yaml")
    except ModuleNotFoundError:
        raise CliError(
            f"{where}: reading YAML needs PyYAML (pip install pyyaml); or give the file as JSON",
            exits.USAGE,
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(
            f"{where}: not valid YAML ({' '.join(str(exc).split())})", exits.USAGE
        ) from None


def load_object(flag: str, path: str) -> dict[str, Any]:
    """The JSON object in ``path`` (``-``: stdin); YAML for a ``.yaml``/``.yml`` name."""
    where = f"{flag} {path}"
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CliError(f"{where}: {exc.strerror or exc}", exits.USAGE) from None
    if path.endswith((".yaml", ".yml")):
        found = _yaml(text, where)
    else:
        try:
            found = json.loads(text)
        except ValueError as exc:
            raise CliError(f"{where}: not valid JSON ({exc})", exits.USAGE) from None
    if not isinstance(found, dict):
        raise CliError(f"{where}: must hold an object (got {type(found).__name__})", exits.USAGE)
    return found


def parse_inputs(pairs: list[str] | None, file: str | None) -> dict[str, Any] | None:
    """``--inputs-file`` then each ``--input key=value`` over it; a value is JSON when it
    parses as JSON (``count=3``, ``tags=["a"]``, ``dry=true``), else the text itself.
    None when neither was given."""
    if not pairs and file is None:
        return None
    inputs = load_object("--inputs-file", file) if file is not None else {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--input: must be key=value (got {pair!r})", exits.USAGE)
        try:
            inputs[key] = json.loads(raw)
        except ValueError:
            inputs[key] = raw
    return inputs
