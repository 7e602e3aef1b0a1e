"""Files as deployed: a user uploads a PDF and a DOCX to a running server, watches them reach
``ready`` on the notification WebSocket while a separate qcluster worker parses and embeds them
with the local all-MiniLM-L6-v2 model, and an agent answers from them with citations."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.e2e.test_run_engine import Api
from tests.e2e.test_serve import dev_token
from tests.files import fixtures as docs
from tests.support.openai_server import FakeOpenAI

pytestmark = pytest.mark.e2e

SUB = "files-user"

PDF_PAGES = [
    "The Orion project kicked off in March.\nIts budget is four million euros.",
    "Orion's launch window opens on the ninth of October at the Kourou spaceport.",
]


def make_docx_about_penguins() -> bytes:
    import io

    import docx

    document = docx.Document()
    document.add_heading("Field notes", level=1)
    document.add_paragraph("Emperor penguins huddle together to survive the Antarctic winter.")
    document.add_paragraph("The colony we observed counted about twelve thousand birds.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def upload(server, token: str, name: str, data: bytes, index_id: str) -> dict:
    response = httpx.post(
        f"{server.url}/api/v1/files/",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": (name, data, "application/octet-stream")},
        data={"vector_index_ids": index_id},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_upload_watch_ready_and_answer_with_citations(server_factory):
    server = server_factory(EMBEDDER_DEFAULT="local").start("--no-worker")
    server.manage("qcluster", background=True)  # parses and embeds
    server.manage("runs_worker", background=True)  # answers
    token = dev_token(SUB, email=f"{SUB}@example.com")
    api = Api(server.url, sub=SUB)

    status, index = api("POST", "/api/v1/vector-indices/", {"name": "Knowledge"})
    assert status == 201, index
    assert (index["embedding_model"], index["dimensions"]) == ("all-MiniLM-L6-v2", 384)

    async def scenario():
        # Connect first, then upload, so no notification can be missed.
        url = f"ws://127.0.0.1:{server.port}/ws/notifications/"
        frames: list[dict] = []
        async with connect(url, subprotocols=["agentdeck.v1", f"bearer.{token}"]) as ws:
            pdf = await asyncio.to_thread(
                upload, server, token, "orion.pdf", docs.make_pdf(PDF_PAGES), index["id"]
            )
            word = await asyncio.to_thread(
                upload, server, token, "notes.docx", make_docx_about_penguins(), index["id"]
            )
            pending = {pdf["id"]: pdf, word["id"]: word}
            done: set[str] = set()
            # ~20 s on an idle 2-core machine; room for a loaded one.
            deadline = time.monotonic() + 240
            while done != set(pending):
                left = deadline - time.monotonic()
                assert left > 0, f"files not ready in time; saw {frames}"
                frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                frames.append(frame)
                if frame.get("type") in ("file.ready", "file.failed"):
                    done.add(frame["data"]["file_id"])
        return pdf, word, frames

    pdf, word, frames = asyncio.run(scenario())
    by_type: dict[str, list[dict]] = {}
    for frame in frames:
        by_type.setdefault(frame["type"], []).append(frame["data"])
    ready = {d["file_id"]: d for d in by_type.get("file.ready", [])}
    assert set(ready) == {pdf["id"], word["id"]}, frames
    assert all(d["status"] == "ready" and d["percent"] == 100 for d in ready.values())
    progress = [d["percent"] for d in by_type.get("file.processing", [])]
    assert progress
    assert all(0 <= p < 100 for p in progress)

    status, pdf_now = api("GET", f"/api/v1/files/{pdf['id']}/")
    assert (pdf_now["status"], pdf_now["page_count"]) == ("ready", 2)
    status, listing = api("GET", f"/api/v1/vector-indices/{index['id']}/files/")
    assert {f["status"] for f in listing["results"]} == {"ready"}

    # Search finds the right document for each question, semantically (no shared keywords).
    status, found = api(
        "POST",
        f"/api/v1/vector-indices/{index['id']}/search/",
        {"query": "When does the rocket lift off?", "top_k": 1},
    )
    assert status == 200, found
    assert found["results"][0]["file_id"] == pdf["id"]
    assert "Kourou" in found["results"][0]["text"]
    assert found["results"][0]["page"] == 1  # both short pages fit in one chunk, from page 1
    status, found = api(
        "POST",
        f"/api/v1/vector-indices/{index['id']}/search/",
        {"query": "How many birds were in the group?", "top_k": 1},
    )
    assert found["results"][0]["file_id"] == word["id"]

    # An agent with file_search answers from them and its run records the citations.
    with FakeOpenAI() as model:
        status, provider = api(
            "POST",
            "/api/v1/providers/",
            {"name": "local", "kind": "openai_compatible", "base_url": model.base_url},
        )
        assert status == 201, provider
        status, agent = api(
            "POST",
            "/api/v1/agents/",
            {
                "name": "Librarian",
                "provider": provider["id"],
                "model": "fake-model",
                "instructions": "Answer from the files; cite them.",
                "vector_index_ids": [index["id"]],
            },
        )
        assert status == 201, agent
        model.add_tool_call("file_search", {"query": "Orion launch window"})
        model.add_text("The launch window opens on 9 October [1].")
        status, run = api(
            "POST",
            f"/api/v1/agents/{agent['id']}/runs/",
            {"input": "When is Orion launching?", "mode": "wait"},
        )
        assert status == 200, run
        assert run["status"] == "succeeded", run
        assert "[1]" in run["output"]
        tool_output = json.dumps(model.model_requests()[1].body)
        assert "Kourou" in tool_output

    status, events = api("GET", f"/api/v1/runs/{run['id']}/events/")
    completed = [e for e in events["results"] if e["type"] == "tool_call.completed"]
    citations = completed[0]["data"]["citations"]
    assert citations[0]["file_id"] == pdf["id"]
    assert citations[0]["file_name"] == "orion.pdf"
    assert citations[0]["page"] == 1
