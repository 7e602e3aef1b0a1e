from __future__ import annotations

from django.db import transaction

from agentdeck.accounts.models import User
from agentdeck.agents.models import Agent, Provider
from agentdeck.agents.services.agents import agent_create

DEMO_PROVIDER_NAME = "Offline demo (mock)"
DEMO_AGENT_SLUG = "demo-assistant"


@transaction.atomic
def demo_seed(*, owner: User) -> Agent:
    """Make sure the demo exists: a shared mock provider (no key, no network) and a public agent
    on it owned by the staff user, so a fresh ``make run`` has something to run. Idempotent."""
    provider = Provider.objects.filter(owner__isnull=True, name=DEMO_PROVIDER_NAME).first()
    if provider is None:
        provider = Provider.objects.create(
            name=DEMO_PROVIDER_NAME, kind=Provider.Kind.MOCK, default_model="mock-echo"
        )
    agent = Agent.objects.filter(owner=owner, slug=DEMO_AGENT_SLUG).first()
    if agent is None:
        agent = agent_create(
            owner=owner,
            name="Demo assistant",
            provider=provider,
            model="mock-echo",
            description="Runs on the offline mock model: it echoes what you say.",
            instructions="You are a friendly demo assistant.",
            visibility=Agent.Visibility.PUBLIC,
            metadata={"category": "demo", "tags": ["demo", "offline"]},
        )
    return agent
