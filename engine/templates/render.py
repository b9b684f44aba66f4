"""Walking a JSON value: finding its templates, then putting their results in.

Rendering is two passes so that every template of a value can be evaluated in one
batch (one serialization of the context, one sandbox round trip) between them.
Parts of the value without templates come back as the very same objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from switchyard.engine.templates.limits import TemplateLimits, too_big
from switchyard.engine.templates.protocol import TemplateError
from switchyard.engine.templates.scanner import Parsed, has_template

Parse = Callable[[str], Parsed]


def collect(value: Any, parse: Parse) -> list[str]:
    """The expressions of every template in ``value`` (keys too), in document order, once each.

    Raises :class:`TemplateError` for the first string that is not well formed.
    """
    found: dict[str, None] = {}
    _collect(value, parse, found)
    return list(found)


def _collect(value: Any, parse: Parse, found: dict[str, None]) -> None:
    if isinstance(value, str):
        if has_template(value):
            found.update(dict.fromkeys(parse(value).expressions))
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(key, parse, found)
            _collect(item, parse, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, parse, found)


class Substitution:
    """Puts evaluated results into a value; ``results`` maps each expression to its value."""

    def __init__(self, parse: Parse, results: Mapping[str, Any], limits: TemplateLimits):
        self._parse = parse
        self._results = results
        self._limits = limits

    def apply(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._string(value) if has_template(value) else value
        if isinstance(value, dict):
            return self._object(value)
        if isinstance(value, list):
            items = [self.apply(item) for item in value]
            unchanged = all(new is old for new, old in zip(items, value, strict=True))
            return value if unchanged else items
        return value

    def _object(self, value: dict[Any, Any]) -> dict[Any, Any]:
        rendered: dict[Any, Any] = {}
        templated: dict[str, str] = {}  # rendered key -> the expression that made it
        changed = False
        for key, item in value.items():
            new_key = key
            if isinstance(key, str) and has_template(key):
                new_key = self._key(key)
                templated.setdefault(new_key, self._parse(key).expressions[0])
            if new_key in rendered:
                raise TemplateError(
                    templated[new_key],
                    f"the key renders to {new_key!r}, which the object already has",
                )
            new_item = self.apply(item)
            rendered[new_key] = new_item
            changed = changed or new_key is not key or new_item is not item
        return rendered if changed else value

    def _key(self, key: str) -> str:
        rendered = self._string(key)
        return rendered if isinstance(rendered, str) else stringify(rendered)

    def _string(self, text: str) -> Any:
        parsed = self._parse(text)
        if parsed.whole is not None:
            return self._results[parsed.whole.expression]
        pieces = [
            part if isinstance(part, str) else stringify(self._results[part.expression])
            for part in parsed.parts
        ]
        rendered = "".join(pieces)
        limit = self._limits.max_output_bytes
        # Each result is bounded, but a string with many templates could add them up.
        if len(rendered) > limit or (4 * len(rendered) > limit and len(rendered.encode()) > limit):
            raise too_big(parsed.expressions[-1], self._limits)
        return rendered


def stringify(value: Any) -> str:
    """How a result reads inside text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
