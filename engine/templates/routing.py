"""Which expressions may run in-process, which go to the sandbox, and which are refused.

**In-process (the fast path).** Running jq in the engine's own process is only safe
for expressions that provably finish quickly with a small result, because nothing
can interrupt the jq C library once it runs. The grammar accepted here is::

    expression := operand (op operand)*          -- at most 512 characters
    op         := == | != | < | <= | > | >= | // | and | or
    operand    := path | literal
    path       := "." | first step*
    first      := ("." name | "." string | "." index) "?"?
    step       := ("." name | "." string | "."? index) "?"?
    index      := "[" (string | integer) "]"
    literal    := null | true | false | number | string
    string     := a JSON-like string with no ``\\(`` interpolation

Why each piece is safe: a step is one lookup in an object or array the engine
already built, so a path does at most ~256 constant-time lookups; every operand
yields at most one value (no ``.[]``, ``..``, slices, functions, variables,
``reduce``, recursion, or object/array construction), so each operator runs once on
values no larger than the context or a literal in the expression; comparison and
``//``/``and``/``or`` allocate nothing proportional to their inputs. The result is
a subtree of the context, a literal, or a boolean. jq compiles such a text in
bounded time (no nesting, no definitions). Typical config templates
(``.outputs.build.id``, ``.outputs["deploy-prod"].url``, ``.secrets["token"]``) and
many condition outlets (``.outputs.check.status == "ok"``) qualify; anything else
(including jq's ``$ENV``, which needs ``$``) goes to the sandbox, where a runaway
expression is killed.

**Refused.** jq's ``import``/``include`` directives read ``.jq`` and ``.json`` files
from any directory the expression names (``import "x" as $x {search: "/etc"};``), so
the sandbox would leak the server's files. Directives can only start a program, so
an expression whose first token is ``import``, ``include`` or ``module`` is refused;
so is one starting with a ``#`` comment, since jq 1.8 lets a comment run onto the
next line with a backslash and the directive could hide after it.
"""

from __future__ import annotations

import enum
import re

import orjson

from switchyard.engine.templates.protocol import TemplateError

MAX_FAST_LENGTH = 512


class Route(enum.Enum):
    IN_PROCESS = "in-process"
    SANDBOX = "sandbox"


_WS = r"[ \t\r\n]*"
_STRING = r'"(?:[^"\\]|\\[^(])*"'
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INDEX = rf"\[{_WS}(?:{_STRING}|-?[0-9]+){_WS}\]"
_FIRST = rf"\.(?:{_NAME}|{_STRING}|{_INDEX})\??"
_STEP = rf"(?:\.{_NAME}|\.{_STRING}|\.?{_INDEX})\??"
_PATH = rf"(?:{_FIRST}(?:{_STEP})*|\.)"
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_LITERAL = rf"(?:null|true|false|{_NUMBER}|{_STRING})"
_OPERAND = rf"(?:{_PATH}|{_LITERAL})"
_OPERATOR = rf"(?:{_WS}(?:==|!=|<=|>=|<|>|//){_WS}|[ \t\r\n]+(?:and|or)[ \t\r\n]+)"
# Operands start with different characters (".", a quote, a digit or "-", a letter),
# so the regex hardly backtracks, and the length cap bounds it on a hostile text.
_FAST = re.compile(rf"{_WS}{_OPERAND}(?:{_OPERATOR}{_OPERAND})*{_WS}")

# Cutting an accepted expression into its operands, and a path into its steps.
_TOKEN = re.compile(rf"(?P<path>{_PATH})|{_LITERAL}|{_OPERATOR}|[ \t\r\n]+")
_PART = re.compile(
    rf"\.?(?:(?P<name>{_NAME})|(?P<string>{_STRING})"
    rf"|\[{_WS}(?:(?P<key>{_STRING})|(?P<index>-?[0-9]+)){_WS}\])\??"
)

Step = str | int

_DIRECTIVE = re.compile(r"(?:import|include|module)(?![A-Za-z0-9_])")


def route(expression: str) -> Route:
    """Where ``expression`` runs; raises :class:`TemplateError` when it is refused."""
    head = expression.lstrip()
    if head.startswith("#"):
        raise TemplateError(expression, "a template can't start with a comment")
    if _DIRECTIVE.match(head):
        raise TemplateError(
            expression, "jq's import, include and module directives are not allowed"
        )
    if len(expression) <= MAX_FAST_LENGTH and _FAST.fullmatch(expression):
        return Route.IN_PROCESS
    return Route.SANDBOX


def fast_paths(expression: str) -> list[tuple[Step, ...]] | None:
    """The paths a fast-path expression reads, or None when it may read the whole input.

    Only the values along these paths can change the result (see the grammar above),
    so the in-process evaluator hands jq just those and jq's parsing of its input
    stops growing with the size of the run's context. Anything unsure (the identity
    ``.``, a string jq accepts and JSON doesn't) answers None: the whole context.
    """
    paths: list[tuple[Step, ...]] = []
    position = 0
    for token in _TOKEN.finditer(expression):
        if token.start() != position:
            return None
        position = token.end()
        if token["path"] is not None:
            steps = _steps(token["path"])
            if steps is None:
                return None
            paths.append(steps)
    return paths if position == len(expression) else None


_NAMES = re.compile(rf"(?:\.{_NAME})+")


def plain_names(expression: str) -> tuple[str, ...] | None:
    """The member names of an expression that is only ``.name.name…`` (no quotes,
    indexes, ``?`` or spaces), or None for anything else."""
    if len(expression) > MAX_FAST_LENGTH or not _NAMES.fullmatch(expression):
        return None
    return tuple(expression[1:].split("."))


Literal = str | int | bool | None
# A plain path compared with a literal that jq and Python read alike: integers of up
# to 15 digits (exact as jq's doubles), JSON strings, true, false and null.
_COMPARISON = re.compile(
    rf"{_WS}(?P<path>(?:\.{_NAME})+){_WS}(?P<op>==|!=|<=|>=|<|>){_WS}"
    rf"(?P<literal>null|true|false|-?(?:0|[1-9][0-9]{{0,14}})|{_STRING}){_WS}"
)


def plain_comparison(expression: str) -> tuple[tuple[str, ...], str, Literal] | None:
    """``(names, operator, literal)`` of ``.name.name… <op> <literal>``, or None."""
    match = _COMPARISON.fullmatch(expression) if len(expression) <= MAX_FAST_LENGTH else None
    if match is None:
        return None
    try:
        literal = orjson.loads(match["literal"])
    except orjson.JSONDecodeError:  # an escape jq takes and JSON doesn't
        return None
    return tuple(match["path"][1:].split(".")), match["op"], literal


def _steps(path: str) -> tuple[Step, ...] | None:
    steps: list[Step] = []
    for part in _PART.finditer(path):
        if part["name"] is not None:
            steps.append(part["name"])
        elif part["index"] is not None:
            steps.append(int(part["index"]))
        else:
            try:
                steps.append(orjson.loads(part["string"] or part["key"]))
            except orjson.JSONDecodeError:
                return None
    return tuple(steps) or None
