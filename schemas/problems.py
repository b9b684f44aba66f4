"""pydantic's validation errors as ``(field_path, message)`` problems."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from switchyard.schemas.errors import Problem

_SCALARS = (str, int, float, bool, type(None))
# Tags of unions that can sit anywhere in a path (a policy's rule or group).
_NESTED_TAGS = frozenset({"policy-rule", "policy-group"})


def format_path(loc: Sequence[int | str], prefix: str = "") -> str:
    """``("nodes", 3, "config", "type")`` → ``nodes[3].config.type``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _strip_tags(loc: Sequence[int | str], tags: Collection[str]) -> list[int | str]:
    # A discriminated union puts the tag in the location ("config", "WEBHOOK", "url");
    # users wrote "config.url", so the tag goes.
    kept: list[int | str] = []
    for index, part in enumerate(loc):
        after_union = index == 0 or loc[index - 1] == "config"
        if isinstance(part, str) and (part in _NESTED_TAGS or (part in tags and after_union)):
            continue
        kept.append(part)
    return kept


def _message(error: ErrorDetails, supported: Sequence[str]) -> tuple[str | None, str]:
    """(extra path segment or None, message) for one pydantic error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return None, "is required"
    if kind == "extra_forbidden":
        return None, "is not a known field"
    if kind == "union_tag_invalid":
        return "type", f"{ctx.get('tag')} is not supported by this server" + (
            f" (supported: {', '.join(supported)})" if supported else ""
        )
    if kind == "union_tag_not_found":
        return "type", "is required"
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if kind != "value_error" and isinstance(value, _SCALARS):
        message += f" (got {value!r})"
    return None, message


def problems_from(
    error: ValidationError, *, prefix: str = "", tags: Sequence[str] = ()
) -> list[Problem]:
    """One problem per pydantic error, paths in ``a.b[2].c`` form, tags of unions removed."""
    problems: list[Problem] = []
    for details in error.errors():
        extra, message = _message(details, tags)
        loc = _strip_tags(details["loc"], tags)
        if extra is not None:
            loc.append(extra)
        problems.append((format_path(loc, prefix), message))
    return problems
