"""How a node run ends and what that does to the run.

* SUCCESS: ``variables`` reshape the stored output, ``links`` are rendered, and the
  given connections are followed.
* FAILED: the output gets ``error.message``; with ``onFailure: continue`` the node's
  connection is followed, with ``terminate`` (the default, and always for CONDITION
  and triggers) the run ends FAILED and every other in-flight node run is CANCELLED.
  While the run is CANCELLING a failure does not fail it: it ends CANCELLED.
* CANCELLED (reported by a worker): the run ends CANCELLED, as if cancelled.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from switchyard.engine.machine.context import variables_context
from switchyard.engine.machine.state import NodeRunState
from switchyard.engine.machine.step import Step
from switchyard.engine.templates import TemplateError, TemplatesUnavailable
from switchyard.schemas import Node, RetryPolicy, StatusLabel

# Why an action node failed, as a retry policy's ``retryOn`` names it.
FailureCause = Literal["failure", "timeout"]


def describe(error: Exception) -> str:
    """A template failure as a log sentence: jq's message and the expression."""
    if isinstance(error, TemplateError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def on_failure(node: Node) -> str:
    return str(getattr(node.config, "on_failure", "terminate"))


def complete(step: Step, node_run: NodeRunState, raw: Any, edges: list[int]) -> None:
    """End ``node_run`` SUCCESS with raw output ``raw`` and follow ``edges``."""
    node = step.graph.nodes[node_run.node]
    stored = raw
    if node.variables:
        context = variables_context(step.state, node_run, step.secrets, raw)
        try:
            stored = step.templates.render(node.variables, context)
        except TemplatesUnavailable:  # the engine is stopping: retry the event
            raise
        except Exception as error:  # a template plug-in's failure fails one node, no more
            fail(step, node_run, f"variables: {describe(error)}", raw)
            return
    node_run.links = [*node_run.links, *_render_links(step, node, node_run, raw)]
    step.state.outputs[node.identifier] = step.masker.value(stored)
    step.close_node_run(node_run, "SUCCESS", raw)
    step.state.taken.extend(edges)


def _render_links(step: Step, node: Node, node_run: NodeRunState, raw: Any) -> list[str]:
    """The node's link templates; one that fails is logged and left out, not fatal."""
    links: list[str] = []
    if not node.links:  # most nodes have none: don't build a context for nothing
        return links
    context = variables_context(step.state, node_run, step.secrets, raw)
    for template in node.links:
        try:
            link = step.templates.render(template, context)
        except TemplatesUnavailable:  # the engine is stopping: retry the event
            raise
        except Exception as error:  # see complete()
            step.log(node_run, "WARN", f"link left out: {describe(error)}")
            continue
        if isinstance(link, str) and link:
            links.append(step.masker.text(link))
    return links


def fail(
    step: Step,
    node_run: NodeRunState,
    message: str,
    raw: Any = None,
    *,
    log: bool = True,
    cause: FailureCause | None = None,
) -> None:
    """End ``node_run`` FAILED; then its next attempt after the backoff when its
    ``retry`` policy takes this ``cause`` (None: a failure of the engine's own, such as
    a template, which would only fail again), else continue or end the run as
    ``onFailure`` says."""
    node = step.graph.nodes[node_run.node]
    if log:
        step.log(node_run, "ERROR", message)
    output = {**(raw if isinstance(raw, dict) else {}), "error": {"message": message}}
    step.state.outputs[node.identifier] = step.masker.value(output)
    step.close_node_run(node_run, "FAILED", output)
    if step.state.status == "CANCELLING":
        return
    if cause is not None and _schedule_retry(step, node, node_run, cause, raw):
        return
    if on_failure(node) == "continue":
        step.state.taken.extend(step.graph.edges_out(node.identifier))
        return
    step.cancel_in_flight(f"cancelled: the run failed at node {node.identifier!r}")
    step.finish_run("FAILED")


def _schedule_retry(
    step: Step, node: Node, node_run: NodeRunState, cause: FailureCause, raw: Any
) -> bool:
    """Arm the retry timer of FAILED ``node_run`` when its policy takes the failure."""
    policy = getattr(node.config, "retry", None)
    attempt = node_run.attempt or 1
    if not isinstance(policy, RetryPolicy) or not policy.retries(attempt, cause, _status(raw)):
        return False
    delay = policy.interval(attempt)
    node_run.retry_at = step.now + timedelta(seconds=delay)
    step.set_timer("retry", node_run.retry_at, node_run)
    step.log(
        node_run, "WARN",
        f"attempt {attempt} of {policy.max_attempts} failed ({cause}); "
        f"attempt {attempt + 1} in {delay:g} s",
    )  # fmt: skip
    step.emit("nodeRun.updated", node_run)
    return True


def _status(raw: Any) -> int | None:
    """The HTTP status a webhook's failed call got (``output.response.status``)."""
    response = raw.get("response") if isinstance(raw, dict) else None
    status = response.get("status") if isinstance(response, dict) else None
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def cancelled(step: Step, node_run: NodeRunState, raw: Any) -> None:
    """A worker reported CANCELLED: the node run and then the run end CANCELLED."""
    step.close_node_run(node_run, "CANCELLED", raw)
    step.cancel_in_flight(f"cancelled: node {node_run.node!r} was cancelled")
    step.finish_run("CANCELLED")


def apply_labels(step: Step, node_run: NodeRunState, node_label: Any, run_label: Any) -> None:
    """The taken outlet's ``statusLabel`` on the node run, its ``workflowStatusLabel``
    on the run (a label without text is not shown): CONDITION and INPUT outlets."""
    for label, target in ((node_label, node_run), (run_label, step.state)):
        if isinstance(label, dict) and isinstance(label.get("text"), str) and label["text"]:
            variant = label.get("variant")
            target.status_label = StatusLabel(
                text=label["text"][:200],
                variant=variant[:40] if isinstance(variant, str) else None,
            )
