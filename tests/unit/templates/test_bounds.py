"""Abusive templates fail for their bound (the error names which), and the engine
keeps working after. No timing is asserted: a bound's own message shows it was the
one that stopped the template, and the per-test timeout catches a hang."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from switchyard.engine.templates import JqTemplates, TemplateError, TemplateLimits

# Time runs out first: the memory these use grows slowly or not at all.
RUNAWAYS = [
    "def f: f; f",
    "[limit(100000000; repeat(1))]",
    "last(range(1e12))",
]

# Memory runs out first, under a cap of 64 MB and a generous time bound.
HOGS = [
    "[range(1e9)]",
    '"x" * 1e9',
    "def f: [f]; f",
    "def f: 1 + f; f",
]


@pytest.fixture(scope="module")
def roomy() -> Iterator[JqTemplates]:
    """An engine whose time bound can't be hit before its memory cap."""
    limits = TemplateLimits(timeout_ms=8000, max_output_bytes=64 * 1024, memory_mb=64, workers=1)
    with JqTemplates(limits) as engine:
        yield engine


def failure_of(templates: JqTemplates, expression: str) -> TemplateError:
    """The error of rendering ``expression``."""
    with pytest.raises(TemplateError) as caught:
        templates.render({"config": f"{{{{ {expression} }}}}"}, {"a": 1})
    assert caught.value.expression == expression
    assert templates.evaluate(". + {b: 2} | .b", {}) == 2  # the sandbox still answers
    return caught.value


def assert_replaced(templates: JqTemplates, before: set[int]) -> None:
    after = set(templates.sandbox_pids())
    assert len(after) == templates.limits.workers
    assert after != before


@pytest.mark.parametrize("expression", RUNAWAYS)
def test_a_runaway_template_times_out(templates: JqTemplates, expression: str) -> None:
    before = set(templates.sandbox_pids())
    error = failure_of(templates, expression)
    assert error.message == "template took longer than 300 ms"
    assert_replaced(templates, before)


@pytest.mark.parametrize("expression", HOGS)
def test_a_memory_hog_hits_the_cap(roomy: JqTemplates, expression: str) -> None:
    before = set(roomy.sandbox_pids())
    error = failure_of(roomy, expression)
    assert error.message == "template exceeded the sandbox memory limit of 64 MB"
    assert_replaced(roomy, before)


def test_a_value_nested_too_deep_for_the_sandbox_crashes_only_the_sandbox(
    roomy: JqTemplates,
) -> None:
    before = set(roomy.sandbox_pids())
    error = failure_of(roomy, "reduce range(100000) as $i (0; [.])")
    assert error.message.startswith("template crashed the jq sandbox (killed by SIGSEGV)")
    assert_replaced(roomy, before)


def test_a_value_nested_deeper_than_storage_allows_is_refused(templates: JqTemplates) -> None:
    error = failure_of(templates, "reduce range(300) as $i (0; [.])")
    assert error.message == "template output nests more than 254 arrays or objects"


@pytest.mark.parametrize(
    "expression",
    [
        '"x" * 70000',  # sandbox
        "[range(20000)]",  # sandbox
        ".big",  # fast path
        ".missing // .big",  # fast path
    ],
)
def test_output_is_bounded_on_both_paths(templates: JqTemplates, expression: str) -> None:
    with pytest.raises(TemplateError) as caught:
        templates.evaluate(expression, {"big": "y" * 70_000})
    assert caught.value.message == "template output exceeds 64 KiB"


def test_text_adding_up_many_results_is_bounded(templates: JqTemplates) -> None:
    text = " ".join(["{{ .big }}"] * 3)
    with pytest.raises(TemplateError, match="exceeds 64 KiB"):
        templates.render(text, {"big": "y" * 30_000})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$ENV", {}),
        ("env", {}),
        ("$ENV.PATH", None),
        ("env | keys | length", 0),
        ("[$ENV[]] | length", 0),
        ("get_search_list", []),
        ("input_filename", None),
    ],
)
def test_the_environment_of_the_server_is_invisible(
    templates: JqTemplates, expression: str, expected: Any
) -> None:
    assert templates.evaluate(expression, {}) == expected


@pytest.mark.parametrize(
    "expression",
    [
        'import "leak" as $x {search: "/tmp"}; $x',
        'include "leak" {search: "/tmp"}; 1',
        '  module {a: 1}; import "x" as x; 1',
        '# hi \\\nimport "x" as $x; $x',
    ],
)
def test_reading_files_through_jq_modules_is_refused(
    templates: JqTemplates, expression: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        templates.evaluate(expression, {})
    assert caught.value.expression == expression
    assert "not allowed" in caught.value.message or "comment" in caught.value.message
