"""The filters of ``GET /v1/workflows/runs``, shared by the list and its live stream.

A FastAPI dependency (:func:`run_filters`) reads them from the query into a
:class:`~switchyard.bridge.run_index.RunQuery`; each error is a 422 naming the
parameter. Multi-valued filters take ``name=a&name=b``, ``name[]=a`` or ``name=a,b``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Query, Request

from switchyard.bridge.errors import invalid
from switchyard.bridge.run_index import RunQuery
from switchyard.schemas import RunResult, RunStatus

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _multi(request: Request, name: str, given: list[Any] | None) -> list[str]:
    """Repeated ``name=a&name=b``, ``name[]=a``, and ``name=a,b`` all work."""
    values = [str(v) for v in (given or [])] + request.query_params.getlist(f"{name}[]")
    return [part for value in values for part in value.split(",") if part]


def _versions(raw: list[str]) -> list[int]:
    versions = []
    for value in raw:
        if not value.isdigit() or int(value) < 1:
            raise invalid(f"query.workflowVersions: must be positive integers (got {value!r})")
        versions.append(int(value))
    return versions


def _checked(values: list[str], kind: Any, name: str) -> list[str]:
    allowed = kind.__args__
    for value in values:
        if value not in allowed:
            raise invalid(f"query.{name}: must be one of {', '.join(allowed)} (got {value!r})")
    return values


def _instant(value: str | None, name: str) -> float | None:
    """An ISO 8601 timestamp as ms since the epoch (no zone: UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise invalid(
            f"query.{name}: must be an ISO 8601 timestamp such as 2026-12-01T10:00:00Z "
            f"(got {value!r})"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return float(epoch_ms(parsed))
    except OverflowError:
        raise invalid(f"query.{name}: is out of range (got {value!r})") from None


def epoch_ms(value: datetime) -> int:
    """Whole ms since the epoch, rounded down in integers as the index scores are
    (``createdAt`` → ``2026-12-01T10:00:00.123Z`` is exactly its run's score)."""
    return (value - _EPOCH) // _MS


def _entity(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    blueprint, slash, identifier = value.partition("/")
    if not slash or not blueprint or not identifier:
        raise invalid(f"query.entity: must be <blueprint>/<entity identifier> (got {value!r})")
    return blueprint, identifier


def run_filters(
    request: Request,
    workflowIdentifiers: Annotated[list[str] | None, Query()] = None,
    workflowRunIdentifiers: Annotated[list[str] | None, Query()] = None,
    workflowVersions: Annotated[list[str] | None, Query()] = None,
    createdBy: Annotated[list[str] | None, Query()] = None,
    statuses: Annotated[list[RunStatus] | None, Query()] = None,
    results: Annotated[list[RunResult] | None, Query()] = None,
    createdAfter: Annotated[
        str | None, Query(description="Runs created at or after this ISO 8601 timestamp.")
    ] = None,
    createdBefore: Annotated[
        str | None, Query(description="Runs created at or before this ISO 8601 timestamp.")
    ] = None,
    entity: Annotated[
        str | None,
        Query(
            description="`<blueprint>/<entity>`: the runs associated with that entity (its "
            "event trigger's entity, a self-service trigger's entity-format inputs)."
        ),
    ] = None,
) -> RunQuery:
    """The list filters of the request (``limit``/``offset`` left at their defaults)."""
    return RunQuery(
        workflow_identifiers=_multi(request, "workflowIdentifiers", workflowIdentifiers),
        run_identifiers=_multi(request, "workflowRunIdentifiers", workflowRunIdentifiers),
        workflow_versions=_versions(_multi(request, "workflowVersions", workflowVersions)),
        created_by=_multi(request, "createdBy", createdBy),
        statuses=_checked(_multi(request, "statuses", statuses), RunStatus, "statuses"),
        results=_checked(_multi(request, "results", results), RunResult, "results"),
        created_after=_instant(createdAfter, "createdAfter"),
        created_before=_instant(createdBefore, "createdBefore"),
        entity=_entity(entity),
    )
