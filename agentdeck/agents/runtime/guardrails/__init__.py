"""Guardrails: checks that stop a run when its input or its final output breaks a rule.

An agent's ``guardrails`` field (``{"input": [...], "output": [...]}``, manual in
docs/guardrails.md) is validated on save (``config``), turned into the SDK's guardrail objects for
a run (``sdk`` over ``checks``), and its redact-mode ``pii`` entries rewrite text instead of
stopping the run (``redaction`` over ``pii``). Callers import from this package.
"""

from __future__ import annotations

from agentdeck.agents.runtime.guardrails.config import (
    GUARDRAIL_TYPES,
    MODERATION_CATEGORIES,
    MODERATION_MODEL,
    validate_guardrails,
)
from agentdeck.agents.runtime.guardrails.pii import PII_KINDS, find_pii, redact_text
from agentdeck.agents.runtime.guardrails.redaction import (
    output_redaction_enabled,
    redact_input,
    redact_output,
)
from agentdeck.agents.runtime.guardrails.sdk import build_guardrails, tripped_guardrail_info
from agentdeck.agents.runtime.guardrails.text import latest_user_text

__all__ = [
    "GUARDRAIL_TYPES",
    "MODERATION_CATEGORIES",
    "MODERATION_MODEL",
    "PII_KINDS",
    "build_guardrails",
    "find_pii",
    "latest_user_text",
    "output_redaction_enabled",
    "redact_input",
    "redact_output",
    "redact_text",
    "tripped_guardrail_info",
    "validate_guardrails",
]
