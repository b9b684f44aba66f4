"""The in-process fast path: what qualifies, and that it answers as the sandbox does."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import jq
import pytest

from switchyard.engine.templates import JqTemplates, TemplateError, TemplateLimits, in_process
from switchyard.engine.templates.routing import Route, fast_paths, route

FAST = [
    ".",
    ".outputs.build.id",
    '.outputs["deploy-prod"].url',
    '.outputs."deploy-prod".hits[0]',
    ".outputs.build.tags[-1]",
    ".outputs.build.tags[5]",
    ".outputs.build.tags.[1]",
    '.secrets["token"]',
    ".secrets.missing",
    ".outputs.build.id.x",  # an error, on both paths
    ".outputs.build.id.x?",  # no output
    ".outputs.build.tags.x",
    '.outputs.build["tags"]["x"]?',
    '.outputs.build.tags["a"]',
    ".outputs.nothing.deeper[3].still",
    ".workflow.version",
    "null",
    "true",
    "-3",
    "1.5e3",
    "1e300",
    "100000000000000000000000",
    '"text with \\"quotes\\" and \\u00e9"',
    '"\\\\(not an interpolation)"',
    ".workflow.version == 3",
    '.outputs.trigger.environment != "production"',
    ".outputs.build.id >= 42",
    ".outputs.build.tags < .outputs.build.tags",
    ".outputs.missing // .outputs.build.id",
    ".outputs.build.ok and .outputs.build.nothing",
    ".outputs.build.nothing or .outputs.build.ok",
    ".outputs.big // null",
    # Pruning the context to the paths read must not change any answer:
    ".outputs[0]",
    ".outputs.build == .outputs.build.id",
    '.outputs.build < .outputs["deploy-prod"]',
    '.outputs.build.artifacts == .outputs["deploy-prod"].hits',
    '.outputs["deploy-prod"].hits[1] > .outputs.build.id',
    '.outputs["a\\"b"].c // .outputs."a\\"b"',
    '.outputs[""]',
    ".workflowRun.trigger.identifier.deeper?",
    # Plain member paths, looked up without jq when jq would give the same scalar:
    ".outputs.trigger.environment",
    ".outputs.build.ok",
    ".outputs.build.nothing",
    ".outputs.build.nothing.deeper",
    ".outputs.build.ratio",
    ".outputs.build",
    ".outputs.big.n",
    ".outputs.big.edge",
    ".outputs.big.over",
    ".outputs.big.under",
    ".outputs.big.whole",
    ".outputs.big.huge",
    ".outputs.big.n.deeper",
    ".secrets.token.deeper",
    # Plain paths compared with literals, answered without jq on scalars:
    ".outputs.build.id == 42",
    ".outputs.build.id != -0",
    ".outputs.build.id > 41",
    ".outputs.build.id < 0",
    ".outputs.build.id <= 42",
    '.outputs.build.id < "a"',
    ".outputs.build.ok == true",
    ".outputs.build.ok > 5",
    ".outputs.build.ok >= false",
    ".outputs.build.nothing < false",
    ".outputs.build.nothing == null",
    ".outputs.missing.deeper == null",
    ".outputs.missing.deeper != 0",
    '.outputs.trigger.environment == "staging"',
    '.outputs.trigger.environment == "st\\u0061ging"',
    '.outputs.trigger.environment > "stag"',
    '.outputs.trigger.environment <= "staging"',
    ".outputs.trigger.environment > 999999999999999",
    ' .outputs.words.accent > "e" ',
    '.outputs.words.emoji > "\\uffff"',
    '.outputs.words.accent < "\\ud83d\\ude00"',
    ".outputs.big.edge == 9007199254740992",
    ".outputs.big.over == 9007199254740992",
    ".outputs.big.under < -9007199254740992",
    ".outputs.big.whole == 1",
    ".outputs.build.ratio < 1",
    ".outputs.build.tags == null",
    ".outputs.build.tags > 1",
    ".outputs.build.id.x == 1",
]

SLOW = [
    ".outputs.build.tags[]",
    ".outputs.build.tags[1:]",
    "..",
    ".outputs | keys",
    "$ENV",
    "$__loc__",
    '"\\(.workflow.version)"',
    ".outputs.build.id + 1",
    "(.outputs.build.id)",
    "[.outputs.build.id]",
    "{a: .outputs.build.id}",
    ".outputs.my-node",
    "not",
    ".a .b",
    "@base64",
    "def f: f; f",
    ".outputs." + ".a" * 300,  # too long to vouch for
]


@pytest.mark.parametrize("expression", FAST)
def test_paths_literals_and_comparisons_take_the_fast_path(expression: str) -> None:
    assert route(expression) is Route.IN_PROCESS


@pytest.mark.parametrize("expression", SLOW)
def test_everything_else_goes_to_the_sandbox(expression: str) -> None:
    assert route(expression) is Route.SANDBOX


def test_the_paths_an_expression_reads_are_known() -> None:
    assert fast_paths('.outputs["deploy-prod"].hits[-1] == .secrets.token // 3') == [
        ("outputs", "deploy-prod", "hits", -1),
        ("secrets", "token"),
    ]
    assert fast_paths('"a.b" == null') == []
    assert fast_paths(".a == .") is None  # the identity reads everything


def _outcome(templates: JqTemplates, expression: str, context: Any) -> tuple[str, Any]:
    try:
        return "value", templates.evaluate(expression, context)
    except TemplateError as error:
        return "error", error.message


@pytest.mark.parametrize("expression", FAST)
def test_the_fast_path_answers_as_the_sandbox_does(
    templates: JqTemplates, context: dict[str, Any], expression: str
) -> None:
    # Parentheses change nothing to jq but take the expression off the fast path.
    wrapped = f"({expression})"
    assert route(wrapped) is Route.SANDBOX
    big: dict[str, float] = {"n": 2**64 - 1, "edge": 2**53, "over": 2**53 + 1}
    big |= {"under": -(2**53) - 1, "whole": 1.0, "huge": 1e300}
    words = {"accent": "é", "emoji": "\U0001f600"}
    context = {**context, "outputs": {**context["outputs"], "big": big, "words": words}}
    assert _outcome(templates, expression, context) == _outcome(templates, wrapped, context)


def test_a_plain_path_to_a_scalar_is_looked_up_without_jq(
    templates: JqTemplates, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_jq(program: Any, text: str) -> Any:
        raise AssertionError(f"jq ran on {text}")

    monkeypatch.setattr(in_process, "first_output", no_jq)
    assert templates.evaluate(".outputs.build.id", context) == 42
    assert templates.evaluate(".outputs.trigger.environment", context) == "staging"
    assert templates.evaluate(".outputs.build.ok", context) is True
    assert templates.evaluate(".outputs.missing.deeper", context) is None
    assert templates.evaluate(".outputs.build.id >= 42", context) is True
    assert templates.evaluate('.outputs.trigger.environment == "prod"', context) is False
    assert templates.evaluate(".outputs.missing.deeper < false", context) is True
    # jq's own answers: a float (1.0 comes back as 1), a container, an error.
    for expression in (
        ".outputs.build.ratio",
        ".outputs.build",
        ".outputs.build.id.x",
        ".outputs.build.ratio > 0",
        ".outputs.build.id.x == 1",
    ):
        with pytest.raises(AssertionError, match="jq ran"):
            templates.evaluate(expression, context)


def test_a_cache_hit_never_compiles(
    templates: JqTemplates, context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[str] = []
    real = jq.compile

    def counting(program: str, *args: Any) -> Any:
        compiled.append(program)
        return real(program, *args)

    monkeypatch.setattr(jq, "compile", counting)
    expression = ".outputs.build.tags[1]"
    results = [templates.evaluate(expression, context) for _ in range(3)]
    threads = [
        threading.Thread(target=templates.evaluate, args=(expression, context)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["b", "b", "b"]
    assert compiled == [expression]


def test_the_fast_path_runs_while_every_sandbox_worker_is_busy(
    context: dict[str, Any], wait_until: Callable[..., Any]
) -> None:
    with JqTemplates(TemplateLimits(timeout_ms=1000, workers=1)) as templates:
        errors: list[TemplateError] = []

        def hog() -> None:
            try:
                templates.evaluate("def f: f; f", {})
            except TemplateError as error:
                errors.append(error)

        busy = threading.Thread(target=hog)
        busy.start()
        wait_until(lambda: templates.sandbox_pids() == [])  # the one worker is borrowed
        assert templates.evaluate(".outputs.build.id", context) == 42
        assert busy.is_alive()
        busy.join()
        assert errors[0].message == "template took longer than 1000 ms"


def test_a_failed_fast_path_evaluation_leaves_no_crash_behind() -> None:
    # jq.py's result iterator crashes the interpreter when the cycle collector frees
    # it (it uses a field the collector cleared); a failure kept in a traceback used
    # to leave one there. Run in a child so that a crash fails this test, not the run.
    code = """
import gc
from switchyard.engine.templates import JqTemplates, TemplateError, TemplateLimits
with JqTemplates(TemplateLimits(workers=1)) as templates:
    kept = []
    for _ in range(50):
        try:
            templates.evaluate(".a.b", {"a": 1})
        except TemplateError as error:
            kept.append(error)
            error.__traceback__.tb_frame.f_locals  # a frame, a cycle, like pytest keeps
    del kept
    gc.collect()
    print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]
