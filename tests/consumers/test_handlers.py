"""Handlers run without a broker or server (HandlerEnvironment): the SDK's contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from switchyard.consumers import HandlerEnvironment, Outcome, WorkContext
from switchyard.consumers.kafka_worker import default_group
from switchyard.schemas import node_run_id
from switchyard.schemas.settings import Settings

NOW = datetime(2026, 1, 28, 10, 0, tzinfo=UTC)
env = HandlerEnvironment(clock=lambda: NOW)


async def test_a_dict_is_success_with_that_output_and_logs_ship_with_it() -> None:
    async def handler(ctx: WorkContext) -> dict[str, Any]:
        ctx.log.info(f"deploying {ctx.payload['service']}", env="prod")
        ctx.log.debug("details")
        return {"version": "1.2"}

    done = await env.run(handler, {"service": "api"})
    assert (done.status, done.result, done.output) == ("COMPLETED", "SUCCESS", {"version": "1.2"})
    assert [(e.log_level, e.log, e.tags) for e in done.logs] == [
        ("INFO", "deploying api", {"env": "prod"}), ("DEBUG", "details", {}),
    ]  # fmt: skip
    assert all(e.created_at == NOW for e in done.logs)
    final = done.final
    assert final is not None
    assert final.node_run_id == node_run_id(env.run_id, "work")
    assert final.run_id == env.run_id


async def test_none_is_success_with_an_empty_output() -> None:
    async def handler(ctx: WorkContext) -> None:
        return None

    done = await env.run(handler)
    assert (done.result, done.output) == ("SUCCESS", {})


async def test_an_exception_is_failed_with_an_error_log() -> None:
    async def handler(ctx: WorkContext) -> None:
        ctx.log.info("starting")
        raise ValueError("no such service")

    done = await env.run(handler)
    assert (done.status, done.result) == ("COMPLETED", "FAILED")
    assert done.output == {"error": {"message": "ValueError: no such service"}}
    assert [(e.log_level, e.log) for e in done.logs] == [
        ("INFO", "starting"), ("ERROR", "handler failed: ValueError: no such service"),
    ]  # fmt: skip


async def test_a_wrong_return_type_fails_the_node_run_naming_it() -> None:
    async def handler(ctx: WorkContext) -> Any:
        return ["not", "a", "dict"]

    done = await env.run(handler)
    assert done.result == "FAILED"
    assert "not list" in done.logs[-1].log


async def test_progress_is_reported_before_the_result() -> None:
    async def handler(ctx: WorkContext) -> Outcome:
        ctx.log.info("started job 7")
        await ctx.progress(external_run_id="job-7", links=["https://ci/7"])
        await ctx.progress()  # nothing to say: nothing sent
        return Outcome.failed({"conclusion": "failure"}, links=["https://ci/7"])

    done = await env.run(handler, config={"type": "INTEGRATION_ACTION"})
    assert [(u.status, u.result) for u in done.updates] == [
        ("IN_PROGRESS", None), ("COMPLETED", "FAILED"),
    ]  # fmt: skip
    progress = done.updates[0]
    assert (progress.external_run_id, progress.links) == ("job-7", ["https://ci/7"])
    assert [e.log for e in progress.logs] == ["started job 7"]
    assert done.updates[1].logs == []  # each line ships once
    assert done.output == {"conclusion": "failure"}


async def test_in_progress_leaves_the_node_run_open() -> None:
    async def handler(ctx: WorkContext) -> Outcome:
        return Outcome.in_progress()

    assert (await env.run(handler)).updates == []

    async def noisy(ctx: WorkContext) -> Outcome:
        ctx.log.warn("delivered; the receiver will complete it")
        return Outcome.in_progress()

    [update] = (await env.run(noisy)).updates
    assert (update.status, update.result, update.output) == ("IN_PROGRESS", None, None)


async def test_the_context_carries_the_identifiers() -> None:
    seen: list[tuple[Any, ...]] = []

    async def handler(ctx: WorkContext) -> None:
        seen.append((ctx.run_id, ctx.node_identifier, ctx.workflow_identifier, ctx.payload,
                     ctx.config))  # fmt: skip

    custom = HandlerEnvironment(run_id="wfr_AAAAAAAAAAAAAAAA", node_identifier="deploy",
                                workflow_identifier="wf")  # fmt: skip
    await custom.run(handler, {"x": 1}, config={"type": "KAFKA"})
    assert seen == [("wfr_AAAAAAAAAAAAAAAA", "deploy", "wf", {"x": 1}, {"type": "KAFKA"})]


def test_workers_with_different_filters_get_different_groups() -> None:
    settings = Settings(engine_group="sy")
    assert default_group(settings, [], []) == "sy-worker"
    assert default_group(settings, ["b", "a"], ["w"]) == "sy-worker-wf=w-node=a-node=b"
    assert default_group(settings, ["a", "b"], ["w"]) == default_group(settings, ["b", "a"], ["w"])
