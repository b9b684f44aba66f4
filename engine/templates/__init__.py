"""``{{ jq }}`` templates: rendering node configs and evaluating bare jq expressions.

The state machine receives a :class:`Templates` object (as it receives the clock
and the id source) so that it stays pure and tests can pass a fast one.
"""

from switchyard.engine.templates.protocol import TemplateError, Templates

__all__ = ["TemplateError", "Templates"]
