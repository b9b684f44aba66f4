"""Rendering JSON values: types kept, text stringified, structure walked, errors named."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.engine.templates import JqTemplates, TemplateError


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .outputs.build.id }}", 42),
        ("{{ .outputs.build.ratio }}", 0.5),
        ("{{ .outputs.build.ok }}", True),
        ("{{ .outputs.build.nothing }}", None),
        ("{{ null }}", None),
        ("{{ .outputs.build.tags }}", ["a", "b"]),
        ("{{ .outputs.trigger.dependencies | fromjson }}", ["db", "cache"]),
        ('{{ .outputs["deploy-prod"] | {url} }}', {"url": "https://example.test/x"}),
        ("  {{ .outputs.build.id | tostring }}  ", "42"),
        ("{{ .outputs.build.tags[] }}", "a"),  # the first output
        ("{{ empty }}", None),
    ],
)
def test_a_whole_template_keeps_the_json_type(
    templates: JqTemplates, context: dict[str, Any], template: str, expected: Any
) -> None:
    assert templates.render(template, context) == expected


def test_templates_in_text_are_stringified(templates: JqTemplates, context: dict[str, Any]) -> None:
    rendered = templates.render(
        "env={{ .outputs.trigger.environment }} id={{ .outputs.build.id }} "
        "tags={{ .outputs.build.tags }} none={{ .outputs.build.nothing }} "
        "ok={{ .outputs.build.ok }} obj={{ {a: 1, b: [true]} }}",
        context,
    )
    assert rendered == 'env=staging id=42 tags=["a","b"] none=null ok=true obj={"a":1,"b":[true]}'


def test_nested_values_and_keys_are_rendered(
    templates: JqTemplates, context: dict[str, Any]
) -> None:
    plain = {"retries": 3, "labels": ["x"]}
    config: dict[str, Any] = {
        "url": '{{ .outputs["deploy-prod"].url }}/builds/{{ .outputs.build.id }}',
        "headers": {"X-{{ .workflow.identifier }}": "{{ .workflow.version }}"},
        "body": [{"ids": ["{{ .outputs.build.id }}", 7]}, "{{ .outputs.build.tags | length }}"],
        "{{ .outputs.build.id }}": "number keys become text",
        "plain": plain,
    }
    rendered = templates.render(config, context)
    assert rendered == {
        "url": "https://example.test/x/builds/42",
        "headers": {"X-deploy": 3},
        "body": [{"ids": [42, 7]}, 2],
        "42": "number keys become text",
        "plain": plain,
    }
    assert rendered["plain"] is plain  # untouched parts are not copied
    assert config["url"].startswith("{{")  # the input is not modified


def test_a_value_without_templates_is_returned_as_is(
    templates: JqTemplates, context: dict[str, Any]
) -> None:
    config = {"a": ["b", {"c": 1}], "d": "no braces here", "e": "one { brace }"}
    assert templates.render(config, context) is config


def test_a_key_rendering_to_an_existing_key_is_an_error(
    templates: JqTemplates, context: dict[str, Any]
) -> None:
    with pytest.raises(TemplateError, match="already has") as caught:
        templates.render({"staging": 1, "{{ .outputs.trigger.environment }}": 2}, context)
    assert caught.value.expression == ".outputs.trigger.environment"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (".outputs.build.id.x", 'jq error: Cannot index number with string ("x")'),
        ('error("no deploy target")', "jq error: no deploy target"),
        (".outputs.build.tags | map(. + 1)", 'jq error: string ("a") and number (1) cannot'),
        (".outputs.build.id +", "jq could not compile the expression: syntax error"),
        (".outputs.my-node", "jq could not compile the expression: node/0 is not defined"),
        ("nosuchfunction(1)", "jq could not compile the expression: nosuchfunction/1 is not"),
    ],
)
def test_a_failing_template_names_its_expression_and_jq_message(
    templates: JqTemplates, context: dict[str, Any], expression: str, message: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        templates.render({"a": ["ok", f"x {{{{ {expression} }}}} y"]}, context)
    assert caught.value.expression == expression
    assert caught.value.message.startswith(message)
    assert f"{{{{ {expression} }}}}" in str(caught.value)


def test_the_first_failure_in_document_order_is_raised(
    templates: JqTemplates, context: dict[str, Any]
) -> None:
    config = ['{{ error("first") }}', "{{ .outputs.build.id.nope }}", '{{ error("third") }}']
    with pytest.raises(TemplateError, match="first"):
        templates.render(config, context)
    with pytest.raises(TemplateError, match="Cannot index number"):
        templates.render(config[1:], context)


def test_evaluate_returns_the_first_output(templates: JqTemplates, context: dict[str, Any]) -> None:
    assert templates.evaluate('.outputs.trigger.environment == "staging"', context) is True
    assert templates.evaluate(".outputs.build.tags | length > 5", context) is False
    assert templates.evaluate(".outputs.build.tags[]", context) == "a"
    assert templates.evaluate("empty", context) is None
    with pytest.raises(TemplateError, match="syntax error") as caught:
        templates.evaluate("{{ .a }}", context)  # conditions are bare jq
    assert caught.value.expression == "{{ .a }}"
