"""``{{ jq }}`` templates: rendering node configs and evaluating bare jq expressions.

The state machine receives a :class:`Templates` object (as it receives the clock
and the id source) so that it stays pure and tests can pass a fast one. The
engine's is :class:`JqTemplates`: bounded in time, output size and memory by
:class:`TemplateLimits`. :func:`mask_secrets` hides secret values in what is stored.
"""

from switchyard.engine.templates.jq_templates import JqTemplates
from switchyard.engine.templates.limits import TemplateLimits
from switchyard.engine.templates.protocol import TemplateError, Templates, TemplatesUnavailable
from switchyard.schemas.masking import MASK, mask_secrets

__all__ = [
    "MASK",
    "JqTemplates",
    "TemplateError",
    "TemplateLimits",
    "Templates",
    "TemplatesUnavailable",
    "mask_secrets",
]
