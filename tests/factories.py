from __future__ import annotations

from datetime import timedelta

import factory
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from agentdeck.accounts.models import User
from agentdeck.agents.models import (
    Agent,
    AgentRun,
    AgentVersion,
    Conversation,
    ConversationItem,
    Provider,
    RunEvent,
    Tool,
    ToolCall,
)
from agentdeck.core.crypto import encrypt_secret
from agentdeck.credits.models import ModelPrice
from agentdeck.files.models import Chunk, FileMetadata, VectorIndex, VectorIndexFile


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
    """An owner's offline mock provider; ``owner=None`` makes a shared one. ``api_key`` is stored
    encrypted as provider_create would, without its checks (rows written before a rule)."""

    class Meta:
        model = Provider

    class Params:
        api_key = ""

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"provider-{n}")
    kind = Provider.Kind.MOCK
    api_key_encrypted = factory.LazyAttribute(
        lambda provider: encrypt_secret(provider.api_key) if provider.api_key else ""
    )


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


class AgentVersionFactory(factory.django.DjangoModelFactory):
    """Version 1 of an agent with an empty snapshot, or the existing row for that number."""

    class Meta:
        model = AgentVersion
        django_get_or_create = ("agent", "number")

    agent = factory.SubFactory(AgentFactory)
    number = 1
    snapshot = factory.LazyFunction(dict)


class AgentRunFactory(factory.django.DjangoModelFactory):
    """A run written directly (run start is tested on its own), queued unless ``status`` says
    otherwise, on the agent's current version (version 1 for an AgentFactory agent, which has
    none yet). With ``conversation``, a run of that conversation's owner and agent."""

    class Meta:
        model = AgentRun

    conversation = None
    agent = factory.Maybe(
        "conversation",
        yes_declaration=factory.SelfAttribute("conversation.agent"),
        no_declaration=factory.SubFactory(AgentFactory),
    )
    owner = factory.Maybe(
        "conversation",
        yes_declaration=factory.SelfAttribute("conversation.owner"),
        no_declaration=factory.SelfAttribute("agent.owner"),
    )
    agent_version = factory.SubFactory(
        AgentVersionFactory,
        agent=factory.SelfAttribute("..agent"),
        number=factory.LazyAttribute(lambda version: version.agent.current_version or 1),
    )
    input = "hi"


class RunEventFactory(factory.django.DjangoModelFactory):
    """The next event in the log of ``run`` (or ``run_id``), numbered as the run engine numbers
    them (``next_seq`` bumped in the database), and published to nobody: what a channel layer that
    dropped the live message leaves behind."""

    class Meta:
        model = RunEvent

    run_id = None
    run = factory.Maybe(
        "run_id", yes_declaration=None, no_declaration=factory.SubFactory(AgentRunFactory)
    )
    type = "message.delta"
    data = factory.LazyFunction(dict)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        run = kwargs.pop("run")
        run_id = kwargs.pop("run_id") or run.pk
        if "seq" not in kwargs:
            runs = AgentRun.objects.filter(pk=run_id)
            runs.update(next_seq=F("next_seq") + 1)
            kwargs["seq"] = runs.values_list("next_seq", flat=True).get()
        return super()._create(model_class, *args, run_id=run_id, **kwargs)


class ConversationItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConversationItem

    conversation = factory.SubFactory(ConversationFactory)
    position = factory.Sequence(int)
    data = factory.LazyFunction(lambda: {"role": "user", "content": "hi"})


class ToolFactory(factory.django.DjangoModelFactory):
    """The built-in calculator, as tool_create stores it."""

    class Meta:
        model = Tool

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"calc{n}")
    kind = Tool.Kind.BUILTIN
    config = factory.LazyFunction(lambda: {"builtin": "calculator"})


class ToolCallFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ToolCall

    run = factory.SubFactory(AgentRunFactory)
    call_id = factory.Sequence(lambda n: f"call-{n}")
    tool_name = "calc"


class ModelPriceFactory(factory.django.DjangoModelFactory):
    """The price of the local OpenAI-compatible server's ``fake-model`` since yesterday: 10, 5 and
    30 credits per million input, cached input and output tokens."""

    class Meta:
        model = ModelPrice

    provider_kind = Provider.Kind.OPENAI_COMPATIBLE
    model = "fake-model"
    effective_from = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    input_per_million = 10_000_000
    cached_input_per_million = 5_000_000
    output_per_million = 30_000_000


class VectorIndexFactory(factory.django.DjangoModelFactory):
    """An index on the hash embedder, as vector_index_create stores it with its defaults."""

    class Meta:
        model = VectorIndex

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"index-{n}")
    embedder = VectorIndex.Embedder.HASH
    embedding_model = "hash-v1"
    dimensions = 384


class FileMetadataFactory(factory.django.DjangoModelFactory):
    """A file row with no content behind it: for tests that write chunks directly."""

    class Meta:
        model = FileMetadata

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"f{n}.txt")
    size = 1
    mime_type = "text/plain"
    sha256 = factory.Sequence(lambda n: f"{n:064d}")


class VectorIndexFileFactory(factory.django.DjangoModelFactory):
    """A file of the index's owner attached to it and ready, for tests that write chunks
    directly."""

    class Meta:
        model = VectorIndexFile

    index = factory.SubFactory(VectorIndexFactory)
    file = factory.SubFactory(FileMetadataFactory, owner=factory.SelfAttribute("..index.owner"))
    status = VectorIndexFile.Status.READY


class ChunkFactory(factory.django.DjangoModelFactory):
    """A chunk as ingestion writes it, one token a word. Pass ``embedding`` (the index's embedder
    on ``text``) when the vector matters; many at once with
    ``Chunk.objects.bulk_create(ChunkFactory.build(...) for ...)``."""

    class Meta:
        model = Chunk

    index = factory.SubFactory(VectorIndexFactory)
    file = factory.SubFactory(FileMetadataFactory, owner=factory.SelfAttribute("..index.owner"))
    position = factory.Sequence(int)
    text = "chunk"
    token_count = factory.LazyAttribute(lambda chunk: len(chunk.text.split()))
    char_start = 0
    char_end = factory.LazyAttribute(lambda chunk: len(chunk.text))
    embedding_model = factory.SelfAttribute("index.embedding_model")
    dimensions = factory.SelfAttribute("index.dimensions")
    embedding = factory.LazyAttribute(lambda chunk: [1.0] + [0.0] * (chunk.dimensions - 1))
