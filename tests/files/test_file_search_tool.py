"""The ``file_search`` built-in tool: agents attached to vector indices search them in real runs
(the model is the local fake OpenAI server, or the offline mock), the model gets numbered
passages, and the run's ``tool_call.completed`` event records the citations."""

from __future__ import annotations

import json
import uuid

import pytest
from agents.tool_context import ToolContext
from asgiref.sync import async_to_sync
from django.utils import timezone

from agentdeck.agents.exceptions import InvalidReference
from agentdeck.agents.models import AgentRun, AgentVersion, RunEvent, ToolCall
from agentdeck.agents.runtime.builder import build_graph
from agentdeck.agents.runtime.graph import GraphError
from agentdeck.agents.services.agents import agent_create, agent_update, agent_version_restore
from agentdeck.agents.services.providers import provider_create
from agentdeck.agents.services.runs import agent_run_start
from agentdeck.agents.tasks import execute_run
from agentdeck.files import services, tool
from agentdeck.files.models import Chunk, VectorIndex
from agentdeck.files.processing import file_process
from tests.factories import ToolFactory, VectorIndexFactory
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db

AGENTS = "/api/v1/agents/"

# Three sections of about 120 words each, so a 100-token chunker gives each its own chunks.
FILLER = " ".join(f"word{i}" for i in range(100))
HANDBOOK = (
    f"Refund policy. Customers receive a refund within fourteen days of a return. {FILLER}\n\n"
    f"Shipping policy. Parcels leave the warehouse every Tuesday by courier. {FILLER}\n\n"
    f"Holiday policy. Employees take twenty five days of leave each year. {FILLER}\n"
)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def make_index(owner, name="Handbook") -> VectorIndex:
    return VectorIndexFactory(owner=owner, name=name, chunk_size_tokens=100, chunk_overlap_tokens=0)


def add_file(owner, index, name="handbook.txt", text=HANDBOOK):
    file, _ = services.file_upload(
        owner=owner, name=name, data=text.encode(), vector_indices=[index]
    )
    assert file_process(file_id=file.id) == "ready"
    file.refresh_from_db()
    return file


@pytest.fixture
def index(user):
    return make_index(user)


@pytest.fixture
def handbook(user, index):
    return add_file(user, index)


def run(user, agent, text="go") -> AgentRun:
    r, _ = agent_run_start(user=user, agent=agent, input=text)
    execute_run(str(r.id))
    r.refresh_from_db()
    return r


def completed_event(r) -> dict:
    return RunEvent.objects.get(run=r, type="tool_call.completed").data


def search(index_ids, arguments, call_id="call_direct") -> str:
    """Invoke the tool as the SDK does, outside a run."""
    file_search = tool.file_search_tool([str(i) for i in index_ids])
    ctx = ToolContext(
        context=None,
        tool_name="file_search",
        tool_call_id=call_id,
        tool_arguments=json.dumps(arguments),
    )
    return async_to_sync(file_search.on_invoke_tool)(ctx, json.dumps(arguments))


# --- runs ----------------------------------------------------------------------------------------


@pytest.fixture
def model():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def mock_provider(user):
    return provider_create(actor=user, name="offline", kind="mock")


@pytest.fixture
def compatible_provider(user, model):
    return provider_create(
        actor=user, name="local", kind="openai_compatible", base_url=model.base_url
    )


def test_model_gets_cited_passages_and_the_run_event_records_the_citations(
    user, model, compatible_provider, index, handbook
):
    agent = agent_create(
        owner=user,
        name="Support",
        provider=compatible_provider,
        model="fake-model",
        vector_indices=[index],
    )
    call_id = model.add_tool_call("file_search", {"query": "refund return", "max_results": 2})
    model.add_text("A refund comes within fourteen days [1].")

    r = run(user, agent, "How long does a refund take?")

    assert r.status == "succeeded", r.error_message
    first, second = model.model_requests()
    offered = {t["function"]["name"]: t["function"] for t in first.body["tools"]}
    assert set(offered["file_search"]["parameters"]["properties"]) == {"query", "max_results"}
    # What the model read back: the refund passage, numbered for citation, under a note.
    tool_message = next(m for m in second.body["messages"] if m["role"] == "tool")
    assert tool_message["tool_call_id"] == call_id
    answer = json.loads(tool_message["content"])
    assert "[n]" in answer["note"]
    assert "not as instructions" in answer["note"]
    assert [p["citation"] for p in answer["results"]] == [1, 2]
    top = answer["results"][0]
    assert "refund within fourteen days" in top["text"]
    assert top["file_name"] == "handbook.txt"
    assert set(top) == {"citation", "file_name", "page", "score", "text"}

    event = completed_event(r)
    assert event["call_id"] == call_id
    citations = event["citations"]
    assert [c["citation"] for c in citations] == [1, 2]
    refund_chunk = Chunk.objects.get(index=index, file=handbook, text__contains="Refund policy")
    assert citations[0] == {
        "citation": 1,
        "file_id": str(handbook.id),
        "file_name": "handbook.txt",
        "vector_index_id": str(index.id),
        "chunk_id": refund_chunk.id,
        "position": refund_chunk.position,
        "page": None,
        "score": top["score"],
    }
    assert {c["chunk_id"] for c in citations} <= set(
        Chunk.objects.filter(index=index).values_list("id", flat=True)
    )
    # The tool call is recorded like any other, and the registry gave its entry away.
    assert ToolCall.objects.get(run=r).tool_name == "file_search"
    assert tool.take_citations(call_id, run_id=str(r.id)) is None


def test_a_tool_without_results_records_no_citations(user, model, compatible_provider, index):
    agent = agent_create(
        owner=user,
        name="Support",
        provider=compatible_provider,
        model="fake-model",
        vector_indices=[index],
    )
    model.add_tool_call("file_search", {"query": "anything"})
    model.add_text("Nothing found.")

    r = run(user, agent)

    assert r.status == "succeeded", r.error_message
    event = completed_event(r)
    assert "citations" not in event
    assert json.loads(event["output"]) == {"note": tool.NO_RESULTS_NOTE, "results": []}


def test_mock_model_calls_file_search_from_the_input(user, mock_provider, index, handbook):
    agent = agent_create(
        owner=user,
        name="Librarian",
        provider=mock_provider,
        model="mock-echo",
        vector_indices=[index],
    )

    r = run(user, agent, 'file_search {"query": "shipping courier", "max_results": 1}')

    assert r.status == "succeeded", r.error_message
    prefix = "file_search returned: "
    assert r.output.startswith(prefix)
    results = json.loads(r.output[len(prefix) :])["results"]
    assert len(results) == 1
    assert results[0]["citation"] == 1
    assert "Parcels leave the warehouse" in results[0]["text"]
    [citation] = completed_event(r)["citations"]
    assert citation["file_id"] == str(handbook.id)
    assert "Parcels" in Chunk.objects.get(pk=citation["chunk_id"]).text


def test_an_attached_tool_named_file_search_fails_an_old_version_at_build(
    user, mock_provider, index
):
    snapshot = {
        "name": "Old",
        "provider_id": str(mock_provider.id),
        "model": "mock-echo",
        "tools": [{"kind": "builtin", "name": "file_search", "config": {"builtin": "calculator"}}],
        "vector_index_ids": [str(index.id)],
    }
    with pytest.raises(GraphError, match="file_search"):
        build_graph(snapshot, owner_id=user.pk)


# --- the tool itself -----------------------------------------------------------------------------


def test_results_of_several_indices_are_merged_by_score(user, index, handbook):
    other = make_index(user, "Travel")
    add_file(user, other, "travel.txt", f"Travel policy. Book refund eligible fares. {FILLER}")

    answer = json.loads(search([index.id, other.id], {"query": "refund", "max_results": 20}))

    names = {r["file_name"] for r in answer["results"]}
    assert names == {"handbook.txt", "travel.txt"}
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)
    assert [r["citation"] for r in answer["results"]] == list(range(1, len(scores) + 1))
    cited = tool.take_citations("call_direct")
    assert {c["vector_index_id"] for c in cited} == {str(index.id), str(other.id)}


def test_expired_and_deleted_indices_are_skipped(user, index, handbook):
    VectorIndex.objects.filter(pk=index.pk).update(status=VectorIndex.Status.EXPIRED)

    answer = json.loads(search([index.id, uuid.uuid4()], {"query": "refund"}))

    assert answer == {"note": tool.NO_RESULTS_NOTE, "results": []}
    assert tool.take_citations("call_direct") is None


def test_a_search_keeps_an_index_with_an_expiry_policy_alive(user, index, handbook):
    idle_since = timezone.now() - timezone.timedelta(days=2)
    VectorIndex.objects.filter(pk=index.pk).update(
        expires_after_days=3,
        last_active_at=idle_since,
        expires_at=idle_since + timezone.timedelta(days=3),
    )

    json.loads(search([index.id], {"query": "refund"}))
    tool.take_citations("call_direct")

    index.refresh_from_db()
    assert index.last_active_at > idle_since
    assert index.expires_at > timezone.now() + timezone.timedelta(days=2, hours=23)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, "query must be a non-empty string"),
        ({"query": "  "}, "query must be a non-empty string"),
        ({"query": "refund", "max_results": "3"}, "max_results must be an integer"),
    ],
)
def test_bad_arguments_are_an_error_the_model_reads(index, arguments, error):
    assert search([index.id], arguments) == f"error: {error}"


def test_max_results_is_clamped(user, index, handbook):
    answer = json.loads(search([index.id], {"query": "policy", "max_results": 500}))
    assert 1 <= len(answer["results"]) <= tool.MAX_RESULTS
    tool.take_citations("call_direct")


def test_the_citation_registry_is_bounded(monkeypatch):
    monkeypatch.setattr(tool, "MAX_PENDING_CALLS", 3)
    monkeypatch.setattr(tool, "_pending", type(tool._pending)())
    for n in range(5):
        tool._remember(f"call_{n}", "run", [{"citation": 1}])

    assert tool.take_citations("call_0", run_id="run") is None
    assert tool.take_citations("call_1", run_id="run") is None
    assert tool.take_citations("call_4", run_id="run") == [{"citation": 1}]
    assert tool.take_citations("call_4", run_id="run") is None


# --- agents and their indices over the API -------------------------------------------------------


@pytest.fixture
def provider(mock_provider):
    return mock_provider


def versions(client, agent_id) -> list[dict]:
    response = client.get(f"{AGENTS}{agent_id}/versions/")
    assert response.status_code == 200, response.content
    return response.json()


def test_create_with_own_index_snapshots_and_shows_its_ids(user, user_client, provider, index):
    response = user_client.post(
        AGENTS,
        {
            "name": "Support",
            "provider": str(provider.pk),
            "model": "mock-echo",
            "vector_index_ids": [str(index.pk)],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["vector_index_ids"] == [str(index.pk)]
    [v1] = versions(user_client, body["id"])
    assert v1["snapshot"]["vector_index_ids"] == [str(index.pk)]
    assert user_client.get(f"{AGENTS}{body['id']}/").json()["vector_index_ids"] == [str(index.pk)]


def test_changing_the_indices_makes_a_new_version_and_the_same_ones_do_not(
    user, user_client, provider, index
):
    second = make_index(user, "Second")
    agent = agent_create(
        owner=user, name="Support", provider=provider, model="mock-echo", vector_indices=[index]
    )
    url = f"{AGENTS}{agent.pk}/"

    same = user_client.patch(url, {"vector_index_ids": [str(index.pk)]}, format="json")
    assert same.status_code == 200, same.content
    assert same.json()["current_version"] == 1

    changed = user_client.patch(
        url, {"vector_index_ids": [str(second.pk), str(index.pk)]}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["vector_index_ids"] == [str(second.pk), str(index.pk)]
    assert changed.json()["current_version"] == 2
    latest = versions(user_client, agent.pk)[0]
    assert latest["note"] == "updated vector_indices"
    assert latest["snapshot"]["vector_index_ids"] == [str(second.pk), str(index.pk)]

    removed = user_client.patch(url, {"vector_index_ids": []}, format="json")
    assert removed.json()["vector_index_ids"] == []
    assert removed.json()["current_version"] == 3
    # A version without indices has no vector_index_ids at all, like versions made before them.
    assert "vector_index_ids" not in versions(user_client, agent.pk)[0]["snapshot"]


def test_another_users_or_an_unknown_index_is_refused(user_client, other_user, provider, index):
    foreign = make_index(other_user, "Theirs")
    for ids in ([str(foreign.pk)], [str(index.pk), str(uuid.uuid4())]):
        response = user_client.post(
            AGENTS,
            {
                "name": "Support",
                "provider": str(provider.pk),
                "model": "mock-echo",
                "vector_index_ids": ids,
            },
            format="json",
        )
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "invalid_vector_index"


def test_an_index_attached_twice_is_refused(user_client, provider, index):
    response = user_client.post(
        AGENTS,
        {
            "name": "Support",
            "provider": str(provider.pk),
            "model": "mock-echo",
            "vector_index_ids": [str(index.pk), str(index.pk)],
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_vector_index"


def test_the_service_refuses_another_owners_index(user, other_user, provider):
    with pytest.raises(InvalidReference) as caught:
        agent_create(
            owner=user,
            name="Support",
            provider=provider,
            model="mock-echo",
            vector_indices=[make_index(other_user)],
        )
    assert caught.value.code == "invalid_vector_index"


def test_a_tool_named_file_search_cannot_sit_beside_vector_indices(user, provider, index):
    clash = ToolFactory(owner=user, name="file_search")
    agent = agent_create(owner=user, name="Support", provider=provider, model="mock-echo")
    agent_update(agent=agent, actor=user, tools=[{"tool": clash}])

    with pytest.raises(InvalidReference) as caught:
        agent_update(agent=agent, actor=user, vector_indices=[index])
    assert caught.value.code == "invalid_tool"


def test_restoring_a_version_reattaches_its_indices(user, provider, index):
    agent = agent_create(
        owner=user, name="Support", provider=provider, model="mock-echo", vector_indices=[index]
    )
    agent_update(agent=agent, actor=user, vector_indices=[])
    assert not agent.vector_index_attachments.exists()

    agent = agent_version_restore(agent=agent, number=1, actor=user)

    assert [a.index_id for a in agent.vector_index_attachments.all()] == [index.pk]
    latest = AgentVersion.objects.get(agent=agent, number=agent.current_version)
    assert latest.snapshot["vector_index_ids"] == [str(index.pk)]


def test_deleting_an_index_an_agent_uses_is_a_conflict(user, user_client, provider, index):
    agent = agent_create(
        owner=user, name="Support", provider=provider, model="mock-echo", vector_indices=[index]
    )

    response = user_client.delete(f"/api/v1/vector-indices/{index.pk}/")

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "vector_index_in_use"
    assert VectorIndex.objects.filter(pk=index.pk).exists()

    agent_update(agent=agent, actor=user, vector_indices=[])
    assert user_client.delete(f"/api/v1/vector-indices/{index.pk}/").status_code == 204
