from __future__ import annotations

import factory
from django.utils.text import slugify

from agentdeck.accounts.models import User
from agentdeck.agents.models import Agent, Conversation, Provider


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    id = factory.Faker("uuid4")
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    role = User.Role.USER


class StaffFactory(UserFactory):
    role = User.Role.STAFF


class ProviderFactory(factory.django.DjangoModelFactory):
    """An owner's offline mock provider; ``owner=None`` makes a shared one."""

    class Meta:
        model = Provider

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"provider-{n}")
    kind = Provider.Kind.MOCK


class AgentFactory(factory.django.DjangoModelFactory):
    """A private agent on a mock provider of the same owner."""

    class Meta:
        model = Agent

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Agent {n}")
    slug = factory.LazyAttribute(lambda agent: slugify(agent.name))
    provider = factory.SubFactory(ProviderFactory, owner=factory.SelfAttribute("..owner"))
    model = "mock-echo"


class ConversationFactory(factory.django.DjangoModelFactory):
    """A conversation of ``owner`` with one of their agents. To talk to an existing agent, pass
    both ``agent`` and ``owner``."""

    class Meta:
        model = Conversation

    owner = factory.SubFactory(UserFactory)
    agent = factory.SubFactory(AgentFactory, owner=factory.SelfAttribute("..owner"))
