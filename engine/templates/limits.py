"""The bounds on template evaluation, and the sentences a template that hits one fails with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from switchyard.engine.templates.protocol import TemplateError

if TYPE_CHECKING:
    from switchyard.schemas.settings import Settings

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    """How long one template may run, how big its result may be, and the sandbox's size.

    ``timeout_ms`` and ``max_output_bytes`` apply to every template; ``memory_mb`` caps
    the address space of each sandbox process and ``workers`` is how many run.
    """

    timeout_ms: int = 1000
    max_output_bytes: int = _MIB
    memory_mb: int = 256
    workers: int = 2

    def __post_init__(self) -> None:
        # Scalars skip the size check on the fast path: no number's JSON reaches 1 KiB.
        for name, least in (
            ("timeout_ms", 1),
            ("max_output_bytes", 1024),
            ("memory_mb", 32),
            ("workers", 1),
        ):
            if getattr(self, name) < least:
                raise ValueError(f"TemplateLimits.{name}: must be at least {least}")

    @classmethod
    def from_settings(cls, settings: Settings) -> TemplateLimits:
        return cls(
            timeout_ms=settings.template_timeout_ms,
            max_output_bytes=settings.template_max_output_bytes,
            memory_mb=settings.template_memory_mb,
            workers=settings.template_workers,
        )


def describe_size(size: int) -> str:
    """``1048576`` → ``"1 MiB"``; the limit is shown the way an operator would set it."""
    if size % _MIB == 0:
        return f"{size // _MIB} MiB"
    if size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} bytes"


def _jq_message(raw: str) -> str:
    """The first line of a jq message, without its ``jq: error:`` prefix.

    Compile errors come as several lines (the source with a caret, then a count);
    the first already says what and where, and a log line should stay one line.
    """
    first = raw.strip().splitlines()[0] if raw.strip() else "unknown error"
    return first.removeprefix("jq: error: ").rstrip(":")


def compile_failed(expression: str, raw: str) -> TemplateError:
    return TemplateError(expression, f"jq could not compile the expression: {_jq_message(raw)}")


def jq_failed(expression: str, raw: str) -> TemplateError:
    return TemplateError(expression, f"jq error: {_jq_message(raw)}")


def timed_out(expression: str, limits: TemplateLimits) -> TemplateError:
    return TemplateError(expression, f"template took longer than {limits.timeout_ms} ms")


def too_big(expression: str, limits: TemplateLimits) -> TemplateError:
    size = describe_size(limits.max_output_bytes)
    return TemplateError(expression, f"template output exceeds {size}")


def too_deep(expression: str) -> TemplateError:
    return TemplateError(expression, "template output nests more than 254 arrays or objects")


def out_of_memory(expression: str, limits: TemplateLimits) -> TemplateError:
    return TemplateError(
        expression, f"template exceeded the sandbox memory limit of {limits.memory_mb} MB"
    )


def crashed(expression: str, how: str, limits: TemplateLimits) -> TemplateError:
    # jq dies by SIGSEGV both when its recursion overflows the stack and when an
    # allocation fails under the address-space cap: the message names both bounds.
    return TemplateError(
        expression,
        f"template crashed the jq sandbox ({how}); it may nest too deeply or need more "
        f"than the sandbox memory limit of {limits.memory_mb} MB",
    )


def refused(expression: str, why: str) -> TemplateError:
    return TemplateError(expression, why)
