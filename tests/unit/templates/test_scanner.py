"""Finding templates in strings: braces and strings inside the jq, whole vs mixed."""

from __future__ import annotations

import pytest

from switchyard.engine.templates import TemplateError
from switchyard.engine.templates.scanner import Template, parse


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("{{ .a }}", ".a"),
        ("{{.a}}", ".a"),
        ("  {{ .a }}\n", ".a"),
        ('{{ {a: .x, b: "}}"} }}', '{a: .x, b: "}}"}'),
        ("{{ {a: {b: 1}} }}", "{a: {b: 1}}"),
        ("{{ {a: 1}}}", "{a: 1}"),
        ('{{ "\\"}}" }}', '"\\"}}"'),
        ('{{ "\\\\" }}', '"\\\\"'),
        ('{{ "x\\(.a + "}}")y" }}', '"x\\(.a + "}}")y"'),
        ('{{ "\\(("}}" | length))" }}', '"\\(("}}" | length))"'),
        ('{{ "\\({a: "}}"} | .a)" }}', '"\\({a: "}}"} | .a)"'),
        ('{{ .a | if . then "{{" else "}}" end }}', '.a | if . then "{{" else "}}" end'),
        ("{{ (.a) }}", "(.a)"),
    ],
)
def test_a_string_holding_one_template_is_whole(text: str, expression: str) -> None:
    parsed = parse(text)
    assert parsed.whole == Template(expression)
    assert parsed.expressions == [expression]


def test_text_around_templates_is_kept_in_order() -> None:
    parsed = parse('id={{ .a }}, name={{ "}}" }}!')
    assert parsed.whole is None
    assert parsed.parts == ("id=", Template(".a"), ", name=", Template('"}}"'), "!")


def test_two_templates_are_not_whole_even_without_text() -> None:
    parsed = parse("{{ .a }}{{ .b }}")
    assert parsed.whole is None
    assert parsed.expressions == [".a", ".b"]


def test_closing_braces_outside_a_template_are_text() -> None:
    parsed = parse("}} and {{ .a }}}")
    assert parsed.parts == ("}} and ", Template(".a"), "}")


@pytest.mark.parametrize(
    "text", ["{{ .a ", "x {{ .a } }", '{{ "}} }}', '{{ "\\(.a }}" }}', "{{ {a: 1} }"]
)
def test_an_unterminated_template_is_an_error(text: str) -> None:
    with pytest.raises(TemplateError, match="unterminated template"):
        parse(text)


def test_an_empty_template_is_an_error() -> None:
    with pytest.raises(TemplateError, match="empty template"):
        parse("a {{  }} b")
