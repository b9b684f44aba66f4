"""Finding ``{{ jq }}`` templates in a string.

A regular expression can't find the end of a template: the jq inside may hold
``}}`` in an object (``{{ {a: {b: 1}} }}``) or in a string (``{{ "}}" }}``), and a
string may interpolate code that holds strings again (``"\\(.a + "}}")"``). The
scanner keeps a stack of what it is inside (a string, or an interpolation with its
open parentheses) and a count of open braces, and a template ends at the first
``}}`` met in the jq's own code with no brace open.

jq comments (``#`` to the end of the line) are not recognized: a ``"`` or ``}}``
inside one is read as code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from switchyard.engine.templates.protocol import TemplateError

OPEN = "{{"


@dataclass(frozen=True, slots=True)
class Template:
    """One ``{{ … }}``; ``expression`` is the jq between the braces, stripped."""

    expression: str


Part = str | Template


@dataclass(frozen=True, slots=True)
class Parsed:
    """A string cut into literal text and templates.

    ``whole`` is set when the string is exactly one template (whitespace around it
    allowed): its result then replaces the string and keeps its JSON type.
    """

    parts: tuple[Part, ...]
    whole: Template | None

    @property
    def expressions(self) -> list[str]:
        return [part.expression for part in self.parts if isinstance(part, Template)]


def has_template(text: str) -> bool:
    """The cheap test run on every string of a config before anything else."""
    return OPEN in text


def parse(text: str) -> Parsed:
    """Cut ``text`` into parts; raises :class:`TemplateError` for an empty or open template."""
    parts: list[Part] = []
    position = 0
    while (opening := text.find(OPEN, position)) >= 0:
        start = opening + len(OPEN)
        closing = _closing_braces(text, start)
        if closing < 0:
            raise TemplateError(text[start:].strip(), "unterminated template: no }} closes this {{")
        expression = text[start:closing].strip()
        if not expression:
            raise TemplateError("", "empty template: write a jq expression between {{ and }}")
        if opening > position:
            parts.append(text[position:opening])
        parts.append(Template(expression))
        position = closing + 2
    if position < len(text):
        parts.append(text[position:])
    return Parsed(tuple(parts), _whole(parts))


def _whole(parts: list[Part]) -> Template | None:
    templates = [part for part in parts if isinstance(part, Template)]
    if len(templates) != 1:
        return None
    if any(isinstance(part, str) and part.strip() for part in parts):
        return None
    return templates[0]


# What the scanner stops at: in code, quotes, parentheses and braces; in a string,
# the closing quote and escapes. Everything in between is skipped by the regex engine.
_CODE_STOPS = re.compile(r'["(){}]')
_STRING_STOPS = re.compile(r'["\\]')
_IN_STRING = 0  # a frame on the stack; any other frame is an interpolation's open parens


def _closing_braces(text: str, start: int) -> int:
    """Index of the ``}}`` that closes the template whose jq begins at ``start``, or -1."""
    frames: list[int] = []
    braces = 0
    index = start
    while True:
        in_string = bool(frames) and frames[-1] == _IN_STRING
        match = (_STRING_STOPS if in_string else _CODE_STOPS).search(text, index)
        if match is None:
            return -1
        index, char = match.end(), match.group()
        if in_string:
            index = _after_string_stop(text, index, char, frames)
        elif char == '"':
            frames.append(_IN_STRING)
        elif frames:
            _interpolation_paren(char, frames)
        elif char == "{":
            braces += 1
        elif char == "}" and braces:
            braces -= 1
        elif char == "}" and text.startswith("}", index):
            return index - 1


def _after_string_stop(text: str, index: int, char: str, frames: list[int]) -> int:
    if char == '"':
        frames.pop()
        return index
    if text.startswith("(", index):  # ``\(`` opens an interpolation: code again
        frames.append(1)
    return index + 1  # skip the escaped character (or the interpolation's paren)


def _interpolation_paren(char: str, frames: list[int]) -> None:
    # Braces inside an interpolation can't close the template; only parens matter.
    if char == "(":
        frames[-1] += 1
    elif char == ")":
        frames[-1] -= 1
        if frames[-1] == 0:
            frames.pop()
