"""The offline ``mock`` model provider: a deterministic model for demos and tests.

It needs no API key and makes no network calls, and plugs into the OpenAI Agents SDK as an
ordinary model and provider, so runs, tool calls, handoffs, structured output, streaming and usage
accounting all go through the real SDK machinery. docs/mock_model.md says how it answers.
"""

from __future__ import annotations

from agentdeck.agents.runtime.mock_model.model import (
    DEFAULT_MOCK_MODEL,
    MOCK_MODELS,
    MockModel,
    MockModelProvider,
)

__all__ = ["DEFAULT_MOCK_MODEL", "MOCK_MODELS", "MockModel", "MockModelProvider"]
