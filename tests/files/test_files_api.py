"""Files and vector indices over the API: upload, dedupe, limits, processing, search, access."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agentdeck.files.models import Chunk, FileMetadata, VectorIndex, VectorIndexFile
from agentdeck.files.processing import file_process
from tests.factories import VectorIndexFactory
from tests.files.conftest import TEXT

pytestmark = pytest.mark.django_db


def upload(client, name: str, data: bytes, content_type: str = "text/plain", **extra):
    return client.post(
        "/api/v1/files/",
        {"file": SimpleUploadedFile(name, data, content_type=content_type), **extra},
        format="multipart",
    )


def problem(response) -> dict:
    assert response["Content-Type"].startswith("application/problem+json"), response.content
    return response.json()


def test_upload_stores_bytes_and_metadata_and_dedupes(user, client_for, settings):
    client = client_for(user)
    r = upload(client, "../../etc/notes.md", TEXT.encode(), "application/octet-stream")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["name"] == "notes.md"
    assert body["mime_type"] == "text/markdown"
    assert body["size"] == len(TEXT.encode())
    assert body["sha256"] == hashlib.sha256(TEXT.encode()).hexdigest()
    assert body["status"] == "uploaded"
    file = FileMetadata.objects.get(pk=body["id"])
    # Stored under the row's id, never the user's name.
    assert file.content.name == f"files/{user.pk}/{file.pk}"
    assert (settings.MEDIA_ROOT / file.content.name).read_bytes() == TEXT.encode()

    again = upload(client, "copy.md", TEXT.encode())
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert FileMetadata.objects.filter(owner=user).count() == 1

    content = client.get(f"/api/v1/files/{body['id']}/content/")
    assert content.status_code == 200
    assert b"".join(content.streaming_content) == TEXT.encode()
    assert content["X-Content-Type-Options"] == "nosniff"
    assert "attachment" in content["Content-Disposition"]


def test_other_users_see_neither_file_nor_index(user, other_user, client_for, index):
    file_id = upload(client_for(user), "a.txt", TEXT.encode()).json()["id"]
    theirs = client_for(other_user)
    assert problem(theirs.get(f"/api/v1/files/{file_id}/"))["code"] == "not_found"
    assert theirs.get(f"/api/v1/files/{file_id}/content/").status_code == 404
    assert theirs.delete(f"/api/v1/files/{file_id}/").status_code == 404
    assert theirs.get(f"/api/v1/vector-indices/{index.pk}/").status_code == 404
    r = theirs.post(f"/api/v1/vector-indices/{index.pk}/search/", {"query": "x"}, format="json")
    assert r.status_code == 404
    # Their own index cannot take my file either.
    own = theirs.post("/api/v1/vector-indices/", {"name": "x", "embedder": "hash"}, format="json")
    r = theirs.post(
        f"/api/v1/vector-indices/{own.json()['id']}/files/", {"file_id": file_id}, format="json"
    )
    assert r.status_code == 404
    assert theirs.get("/api/v1/files/").json()["results"] == []


def test_too_large_is_413_before_anything_is_stored(user, client_for, settings):
    settings.FILE_UPLOAD_MAX_BYTES = 1000
    r = upload(client_for(user), "big.txt", b"a " * 600)
    assert r.status_code == 413
    body = problem(r)
    assert body["code"] == "file_too_large"
    assert body["max_bytes"] == 1000
    assert not FileMetadata.objects.exists()
    assert not (settings.MEDIA_ROOT / "files").exists()


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("empty.txt", b"", 400, "empty_file"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, 415, "unsupported_media_type"),
        ("prog.txt", b"\x7fELF\x02\x01\x01" + b"\x00" * 200, 415, "unsupported_media_type"),
    ],
)
def test_rejected_uploads_leave_nothing(user, client_for, settings, name, data, status, code):
    r = upload(client_for(user), name, data)
    assert r.status_code == status, r.content
    assert problem(r)["code"] == code
    assert not FileMetadata.objects.exists()


def test_missing_file_field_is_a_validation_problem(user, client_for):
    r = client_for(user).post("/api/v1/files/", {}, format="multipart")
    assert r.status_code == 400
    assert problem(r)["code"] == "validation_error"


def test_processing_makes_searchable_chunks_and_notifies(user, client_for, index, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "agentdeck.files.services.dispatch.notify_user_on_commit",
        lambda user_id, kind, data: sent.append((user_id, kind, data)),
    )
    client = client_for(user)
    r = upload(
        client,
        "facts.txt",
        TEXT.encode(),
        vector_index_ids=str(index.pk),
        attributes='{"topic": "trivia"}',
    )
    file_id = r.json()["id"]
    assert file_process(file_id=file_id) == "ready"

    file = client.get(f"/api/v1/files/{file_id}/").json()
    assert file["status"] == "ready"
    assert file["progress"] == 100
    assert file["chunk_count"] == 1
    assert file["char_count"] == len(TEXT.strip())
    kinds = [k for _, k, _ in sent]
    assert kinds[0] == "file.processing"
    assert kinds[-1] == "file.ready"
    assert all(uid == user.pk for uid, _, _ in sent)
    assert sent[-1][2]["file_id"] == file_id
    assert sent[-1][2]["percent"] == 100

    idx = client.get(f"/api/v1/vector-indices/{index.pk}/").json()
    assert (idx["status"], idx["file_count"], idx["chunk_count"]) == ("ready", 1, 1)
    assert idx["bytes"] > 384 * 4
    files = client.get(f"/api/v1/vector-indices/{index.pk}/files/").json()["results"]
    assert files[0]["status"] == "ready"
    assert files[0]["attributes"] == {"topic": "trivia"}
    chunk = Chunk.objects.get()
    assert (chunk.embedding_model, chunk.dimensions) == ("hash-v1", 384)

    for mode in ("vector", "keyword", "hybrid"):
        r = client.post(
            f"/api/v1/vector-indices/{index.pk}/search/",
            {"query": "Eiffel Tower summer", "mode": mode, "top_k": 3},
            format="json",
        )
        assert r.status_code == 200, r.content
        hits = r.json()["results"]
        assert len(hits) == 1, mode
        assert hits[0]["file_id"] == file_id
        assert hits[0]["file_name"] == "facts.txt"
        assert "Eiffel" in hits[0]["text"]
        assert hits[0]["position"] == 0
        assert hits[0]["attributes"] == {"topic": "trivia"}


def make_ready(user, index, name: str, text: str, attributes=None):
    from agentdeck.files import services

    file, _ = services.file_upload(owner=user, name=name, data=text.encode())
    services.vector_index_attach(index=index, file=file, attributes=attributes)
    assert file_process(file_id=file.pk) == "ready"
    return file


def test_search_filters_threshold_and_chunking(user, client_for):
    index = VectorIndexFactory(
        owner=user, name="small chunks", chunk_size_tokens=100, chunk_overlap_tokens=20
    )
    words = " ".join(f"alpha{i} beta{i} gamma{i}" for i in range(200))
    a = make_ready(user, index, "a.txt", words, {"lang": "en", "year": 2024})
    b = make_ready(user, index, "b.txt", words + " omega", {"lang": "de", "year": 2023})
    assert a.attachments.get().chunk_count > 5
    spans = list(
        Chunk.objects.filter(file=a)
        .order_by("position")
        .values_list("char_start", "char_end", "token_count")
    )
    assert all(t <= 100 for _, _, t in spans)
    assert all(nxt[0] < cur[1] for cur, nxt in itertools.pairwise(spans))  # overlap
    assert spans[-1][1] == len(words)

    client = client_for(user)
    url = f"/api/v1/vector-indices/{index.pk}/search/"

    def hits(**body):
        r = client.post(url, {"query": "alpha10 beta10", "top_k": 50, **body}, format="json")
        assert r.status_code == 200, r.content
        return r.json()["results"]

    both = hits()
    assert {h["file_id"] for h in both} == {str(a.pk), str(b.pk)}
    assert [h["score"] for h in both] == sorted((h["score"] for h in both), reverse=True)
    assert {h["file_id"] for h in hits(file_ids=[str(a.pk)])} == {str(a.pk)}
    assert {h["file_id"] for h in hits(filters={"lang": "de"})} == {str(b.pk)}
    assert {h["file_id"] for h in hits(filters={"year": [2023, 2024]})} == {str(a.pk), str(b.pk)}
    assert hits(filters={"lang": "fr"}) == []
    top = both[0]["score"]
    assert all(h["score"] >= top for h in hits(score_threshold=top))
    assert len(hits(top_k=3)) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": 51}, "top_k"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
    ],
)
def test_bad_search_requests(user, client_for, index, body, field):
    r = client_for(user).post(f"/api/v1/vector-indices/{index.pk}/search/", body, format="json")
    assert r.status_code == 400
    assert problem(r)["code"] == "validation_error"
    assert field in r.content.decode()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "embedder": "hash", "dimensions": 100}, "invalid_dimensions"),
        ({"name": "x", "embedder": "local", "dimensions": 768}, "invalid_vector_index"),
        ({"name": "x", "embedder": "openai"}, "invalid_vector_index"),
        ({"name": "x", "embedder": "hash", "chunk_size_tokens": 50}, "invalid_vector_index"),
        (
            {
                "name": "x",
                "embedder": "hash",
                "chunk_size_tokens": 400,
                "chunk_overlap_tokens": 300,
            },
            "invalid_vector_index",
        ),
        ({"name": "x", "embedder": "hash", "expires_after_days": 0}, "invalid_vector_index"),
    ],
)
def test_bad_index_definitions(user, client_for, body, code):
    r = client_for(user).post("/api/v1/vector-indices/", body, format="json")
    assert r.status_code == 400, r.content
    assert problem(r)["code"] == code
    assert not VectorIndex.objects.exists()


def test_local_index_is_minilm_384(user, client_for):
    r = client_for(user).post("/api/v1/vector-indices/", {"name": "x"}, format="json")
    assert r.status_code == 201
    # EMBEDDER_DEFAULT is "hash" in these tests; ask for the local model explicitly.
    r = client_for(user).post(
        "/api/v1/vector-indices/", {"name": "y", "embedder": "local"}, format="json"
    )
    assert (r.json()["embedding_model"], r.json()["dimensions"]) == ("all-MiniLM-L6-v2", 384)


def test_attach_detach_and_copy_between_indices(user, client_for, index):

    client = client_for(user)
    file = make_ready(user, index, "facts.txt", TEXT)
    twin = VectorIndexFactory(owner=user, name="twin")
    wide = VectorIndexFactory(owner=user, name="wide", dimensions=768)

    # Vectors of another size cannot be copied in.
    r = client.post(
        f"/api/v1/vector-indices/{wide.pk}/files/",
        {"file_id": str(file.pk), "copy_from_index_id": str(index.pk)},
        format="json",
    )
    assert r.status_code == 409
    assert problem(r)["code"] == "embedding_dimensions_mismatch"
    assert not VectorIndexFile.objects.filter(index=wide).exists()

    r = client.post(
        f"/api/v1/vector-indices/{twin.pk}/files/",
        {"file_id": str(file.pk), "copy_from_index_id": str(index.pk)},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["status"] == "ready"
    assert r.json()["chunk_count"] == 1
    assert Chunk.objects.filter(index=twin, file=file).count() == 1

    # Attaching by embedding queues the file again; the worker makes it ready in `wide` too.
    r = client.post(
        f"/api/v1/vector-indices/{wide.pk}/files/", {"file_id": str(file.pk)}, format="json"
    )
    assert r.status_code == 201
    assert r.json()["status"] == "queued"
    assert FileMetadata.objects.get(pk=file.pk).status == "processing"
    assert file_process(file_id=file.pk) == "ready"
    assert Chunk.objects.get(index=wide).dimensions == 768
    again = client.post(
        f"/api/v1/vector-indices/{wide.pk}/files/", {"file_id": str(file.pk)}, format="json"
    )
    assert again.status_code == 200

    assert client.delete(f"/api/v1/vector-indices/{twin.pk}/files/{file.pk}/").status_code == 204
    assert not Chunk.objects.filter(index=twin).exists()
    assert client.get(f"/api/v1/vector-indices/{twin.pk}/").json()["chunk_count"] == 0
    assert client.delete(f"/api/v1/vector-indices/{twin.pk}/files/{file.pk}/").status_code == 404


def test_detaching_a_file_id_that_is_not_a_uuid_is_not_found(user, client_for, index):
    # The route takes any 36 characters of hex digits and dashes; found by Schemathesis.
    response = client_for(user).delete(f"/api/v1/vector-indices/{index.pk}/files/{'-' * 36}/")
    assert response.status_code == 404
    assert problem(response)["code"] == "not_found"


def test_delete_file_removes_bytes_and_chunks_everywhere(
    user, client_for, index, settings, django_capture_on_commit_callbacks
):
    client = client_for(user)
    file = make_ready(user, index, "facts.txt", TEXT)
    path = settings.MEDIA_ROOT / file.content.name
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/v1/files/{file.pk}/").status_code == 204
    assert not path.exists()
    assert not Chunk.objects.exists()
    idx = client.get(f"/api/v1/vector-indices/{index.pk}/").json()
    assert (idx["file_count"], idx["chunk_count"], idx["bytes"]) == (0, 0, 0)


def test_reprocess_is_idempotent(user, client_for, index):
    client = client_for(user)
    file = make_ready(user, index, "facts.txt", TEXT)
    before = list(Chunk.objects.values_list("text", "char_start", "char_end"))
    for _ in range(2):
        r = client.post(f"/api/v1/files/{file.pk}/reprocess/")
        assert r.status_code == 202
        assert r.json()["status"] == "processing"
        assert file_process(file_id=file.pk) == "ready"
    assert list(Chunk.objects.values_list("text", "char_start", "char_end")) == before
    assert client.get(f"/api/v1/vector-indices/{index.pk}/").json()["chunk_count"] == 1


def test_a_task_delivered_twice_processes_once(user, index):
    from agentdeck.files import services

    file, _ = services.file_upload(
        owner=user, name="a.txt", data=TEXT.encode(), vector_indices=[index]
    )
    assert file_process(file_id=file.pk) == "ready"
    assert file_process(file_id=file.pk) == "not claimed"
    assert FileMetadata.objects.get(pk=file.pk).attempts == 1


def test_openapi_documents_files_and_indices(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for p in (
        "/api/v1/files/",
        "/api/v1/files/{id}/",
        "/api/v1/files/{id}/content/",
        "/api/v1/files/{id}/reprocess/",
        "/api/v1/vector-indices/",
        "/api/v1/vector-indices/{id}/files/",
        "/api/v1/vector-indices/{id}/files/{file_id}/",
        "/api/v1/vector-indices/{id}/search/",
    ):
        assert p in paths, p
    upload_body = paths["/api/v1/files/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload_body
    assert {"413", "415"} <= set(paths["/api/v1/files/"]["post"]["responses"])


@pytest.mark.django_db(transaction=True)
def test_concurrent_attaches_of_one_file_answer_201_once(user, client_for, index):
    """The 201/200 answer comes from the insert, not from a look before it: of attaches racing
    for the same (index, file), exactly one created the attachment."""
    from agentdeck.files import services
    from tests.support.threads import in_threads

    file, _ = services.file_upload(owner=user, name="facts.txt", data=TEXT.encode())

    def attach(i: int) -> int:
        return (
            client_for(user)
            .post(
                f"/api/v1/vector-indices/{index.pk}/files/",
                {"file_id": str(file.pk)},
                format="json",
            )
            .status_code
        )

    assert sorted(in_threads(4, attach)) == [200, 200, 200, 201]
    assert VectorIndexFile.objects.filter(index=index, file=file).count() == 1
