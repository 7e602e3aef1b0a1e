from __future__ import annotations

import pytest
from agents import set_tracing_disabled

from agentdeck.agents.services.agents import agent_create
from agentdeck.agents.services.providers import provider_create


@pytest.fixture(autouse=True, scope="session")
def _no_trace_export():
    # Belt and braces: nothing in the tests may reach OpenAI's trace endpoint.
    set_tracing_disabled(True)


@pytest.fixture
def mock_provider(user):
    return provider_create(actor=user, name="offline", kind="mock")


@pytest.fixture
def mock_agent(user, mock_provider):
    return agent_create(
        owner=user, name="Echo", provider=mock_provider, model="mock-echo", instructions="Be brief."
    )
