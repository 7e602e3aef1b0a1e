"""The worker side: bad documents fail cleanly, the watchdog, races, and every embedder."""

from __future__ import annotations

import itertools
import math
import threading

import pytest
from django.db import connection
from django.utils import timezone

from agentdeck.files import services
from agentdeck.files.chunking import chunk_text
from agentdeck.files.embeddings import (
    LOCAL_WINDOW_TOKENS,
    HashEmbedder,
    LocalEmbedder,
    count_tokens,
    tokenize,
)
from agentdeck.files.models import Chunk, FileMetadata, VectorIndex, VectorIndexFile
from agentdeck.files.processing import ClaimLost, file_claim, file_process, files_watchdog
from tests.factories import ProviderFactory, VectorIndexFactory
from tests.files import fixtures as docs
from tests.files.conftest import TEXT

pytestmark = pytest.mark.django_db


def upload(user, index, name: str, data: bytes) -> FileMetadata:
    file, created = services.file_upload(owner=user, name=name, data=data, vector_indices=[index])
    assert created
    return file


# --- documents ------------------------------------------------------------------------------------


def test_pdf_keeps_pages_and_docx_keeps_tables(user, index):
    pdf = upload(user, index, "two.pdf", docs.make_two_page_pdf())
    assert pdf.mime_type == "application/pdf"
    assert file_process(file_id=pdf.pk) == "ready"
    pdf.refresh_from_db()
    assert pdf.page_count == 2
    assert "Page two says goodbye." in pdf.text
    assert [p[0] for p in pdf.page_offsets] == [1, 2]

    word = upload(user, index, "report.docx", docs.make_docx())
    assert file_process(file_id=word.pk) == "ready"
    word.refresh_from_db()
    assert "Revenue grew" in word.text
    assert "North" in word.text
    assert "12%" in word.text


def test_chunks_of_a_pdf_know_their_page(user):
    index = VectorIndexFactory(owner=user, name="p", chunk_size_tokens=100, chunk_overlap_tokens=0)
    pages = [f"Page {n} " + " ".join(f"word{n}x{i}" for i in range(120)) for n in (1, 2, 3)]
    pdf = upload(user, index, "long.pdf", docs.make_pdf(pages))
    assert file_process(file_id=pdf.pk) == "ready"
    chunks = list(Chunk.objects.filter(file=pdf).order_by("position"))
    assert chunks[0].page == 1
    assert chunks[-1].page == 3
    for c in chunks:
        first = c.text.split()[0]
        assert first.startswith(f"word{c.page}x") or first == "Page", first


@pytest.mark.parametrize(
    ("name", "build", "code"),
    [
        ("corrupt.pdf", docs.make_truncated_pdf, "pdf_corrupt"),
        ("locked.pdf", lambda: docs.make_encrypted_pdf(user_password="s3cret"), "pdf_encrypted"),
        ("bomb.docx", docs.make_docx_bomb, "docx_too_large"),
        (
            "scripts.html",
            lambda: (
                b"<html><head><script>" + b"alert(1);" * 5000 + b"</script>"
                b"<style>body{}</style></head><body><script>x()</script></body></html>"
            ),
            "no_text",
        ),
    ],
)
def test_bad_documents_fail_with_a_code_and_leave_no_chunks(user, index, name, build, code):
    good = upload(user, index, "good.txt", TEXT.encode())
    assert file_process(file_id=good.pk) == "ready"
    file = upload(user, index, name, build())
    assert file_process(file_id=file.pk) == f"failed: {code}"
    file.refresh_from_db()
    assert (file.status, file.error_code, file.claimed_by) == ("failed", code, None)
    assert file.error_message
    assert not Chunk.objects.filter(file=file).exists()
    attachment = VectorIndexFile.objects.get(file=file)
    assert (attachment.status, attachment.error_code) == ("failed", code)
    index.refresh_from_db()
    # The good file is untouched and the index counts only it.
    assert (index.file_count, index.chunk_count, index.status) == (1, 1, "ready")


def test_an_unexpected_failure_shows_its_owner_a_code_not_the_exception_text(
    user, index, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError("connection to /srv/internal/db password=hunter2 lost")

    monkeypatch.setattr("agentdeck.files.processing.parse", broken)
    file = upload(user, index, "a.txt", TEXT.encode())
    assert file_process(file_id=file.pk) == "failed: processing_error"
    file.refresh_from_db()
    assert file.error_code == "processing_error"
    assert "hunter2" not in file.error_message
    assert "RuntimeError" not in file.error_message
    # The operator has the failure in the server log, its credential-shaped text redacted.
    assert "RuntimeError: connection to /srv/internal/db" in caplog.text
    assert "hunter2" not in caplog.text


def test_html_keeps_text_and_drops_scripts(user, index):
    page = (
        b"<html><head><title>T</title><script>var secret = 1;</script><style>p{}</style></head>"
        b"<body><p>Visible paragraph.</p><script>steal()</script></body></html>"
    )
    file = upload(user, index, "page.html", page)
    assert file_process(file_id=file.pk) == "ready"
    text = FileMetadata.objects.get(pk=file.pk).text
    assert "Visible paragraph." in text
    assert "secret" not in text
    assert "steal" not in text


def test_a_10mb_single_line_is_chunked_completely(user):
    # Big chunks keep the test to ~1,500 of them; the default 800/400 would make 16,000.
    index = VectorIndexFactory(
        owner=user, name="big", chunk_size_tokens=4096, chunk_overlap_tokens=0
    )
    line = " ".join(f"w{i}" for i in range(1_400_000))[: 10 * 1024 * 1024]
    file = upload(user, index, "line.txt", line.encode())
    assert file_process(file_id=file.pk) == "ready"
    chunks = Chunk.objects.filter(file=file)
    last = chunks.order_by("-position").values_list("char_end", flat=True).first()
    assert last == len(line.rstrip())
    assert chunks.count() > 1000
    assert FileMetadata.objects.get(pk=file.pk).char_count == len(line.rstrip())


def test_latin1_text_is_read_not_mangled(user, index):
    file = upload(user, index, "legacy.txt", "Café crème, naïve façade.".encode("cp1252"))
    assert file_process(file_id=file.pk) == "ready"
    assert "Café crème" in FileMetadata.objects.get(pk=file.pk).text


# --- chunking and embedders ------------------------------------------------------------------------


def test_chunking_windows_and_overlap():
    text = " ".join(f"token{i}" for i in range(3000))
    tokens = tokenize(text)
    chunks = chunk_text(text, size=800, overlap=400, tokens=tokens)
    # Up to 800 pieces, never cutting a word ("token123" is several word pieces).
    assert all(780 <= c.token_count <= 800 for c in chunks[:-1])
    assert all(text[c.char_start - 1] == " " for c in chunks[1:])
    assert all(text[c.char_end] == " " for c in chunks[:-1])
    assert all(b.char_start < a.char_end for a, b in itertools.pairwise(chunks))
    assert chunks[0].char_start == 0
    assert chunks[-1].char_end == len(text)
    # Every token is in some chunk and the chunks are exact substrings.
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)
    assert abs(len(chunks) - (math.ceil((len(tokens) - 800) / 400) + 1)) <= 1
    assert chunk_text("", size=800, overlap=400) == []
    with pytest.raises(ValueError, match="overlap"):
        chunk_text(text, size=100, overlap=100)


def test_hash_embedder_is_unit_length_and_similarity_aware():
    e = HashEmbedder(384)
    a, b, c = e.embed(["the cat sat on the mat", "a cat sat on a mat", "stock prices fell"])
    assert abs(sum(x * x for x in a) - 1) < 1e-9
    dot = lambda u, v: sum(x * y for x, y in zip(u, v, strict=True))  # noqa: E731
    assert dot(a, b) > dot(a, c)


def test_local_embedder_reads_past_the_model_window():
    """all-MiniLM-L6-v2 sees 256 word pieces; a longer text is embedded window by window and
    averaged, so its tail changes the vector (a truncating embedder would ignore it)."""
    e = LocalEmbedder()
    head = " ".join(["The meeting covers the quarterly budget."] * 60)
    assert count_tokens(head) > LOCAL_WINDOW_TOKENS
    cut = head[: tokenize(head).offsets[LOCAL_WINDOW_TOKENS - 1][1]]
    full, first_window, tailed = e.embed([head, cut, head + " Penguins live in Antarctica."])
    assert len(full) == 384
    assert abs(sum(x * x for x in full) - 1) < 1e-5
    assert full != first_window
    assert tailed != full
    q = e.embed(["Where do penguins live?"])[0]
    dot = lambda u, v: sum(x * y for x, y in zip(u, v, strict=True))  # noqa: E731
    assert dot(q, tailed) > dot(q, full)


def test_openai_compatible_embeddings_through_a_provider(user, client_for):
    from tests.support.openai_server import FakeOpenAI

    with FakeOpenAI() as fake:
        provider = ProviderFactory(
            owner=user, name="local-embed", kind="openai_compatible", base_url=fake.base_url
        )
        r = client_for(user).post(
            "/api/v1/vector-indices/",
            {
                "name": "remote",
                "embedder": "openai_compatible",
                "embedding_model": "embed-small",
                "dimensions": 256,
                "provider_id": str(provider.pk),
            },
            format="json",
        )
        assert r.status_code == 201, r.content
        index = VectorIndex.objects.get(pk=r.json()["id"])
        file = upload(user, index, "facts.txt", TEXT.encode())
        fake.embedding_dimensions = 256
        assert file_process(file_id=file.pk) == "ready"
        chunk = Chunk.objects.get(file=file)
        assert (chunk.embedding_model, chunk.dimensions) == ("embed-small", 256)
        r = client_for(user).post(
            f"/api/v1/vector-indices/{index.pk}/search/", {"query": "Eiffel"}, format="json"
        )
        assert r.json()["results"][0]["file_id"] == str(file.pk)
        bodies = [q.body for q in fake.requests if q.path == "/v1/embeddings"]
        assert bodies[0]["model"] == "embed-small"
        assert bodies[0]["input"]

        # An endpoint that keeps failing fails this attachment with a code; the file is ready
        # (its text is parsed) and the failure is reported per index.
        other = services.vector_index_create(
            owner=user,
            name="remote2",
            embedder="openai_compatible",
            embedding_model="embed-small",
            dimensions=256,
            provider=provider,
        )
        fake.embedding_failures.extend([500] * 10)
        services.vector_index_attach(index=other, file=file)
        assert file_process(file_id=file.pk) == "ready"
        attachment = VectorIndexFile.objects.get(index=other, file=file)
        assert (attachment.status, attachment.error_code) == ("failed", "provider_error")
        assert not Chunk.objects.filter(index=other).exists()


def test_a_stored_provider_whose_key_cannot_be_sent_fails_embedding_with_a_code(user, client_for):
    """A row written before the API refused such keys: the attachment fails with
    provider_unavailable and the search answers 409, not a 500."""
    provider = ProviderFactory(
        owner=user,
        name="legacy-embed",
        kind="openai_compatible",
        base_url="http://127.0.0.1:1/v1",
        api_key="sk-ключ",
    )
    index = services.vector_index_create(
        owner=user,
        name="remote",
        embedder="openai_compatible",
        embedding_model="embed-small",
        dimensions=256,
        provider=provider,
    )
    file = upload(user, index, "facts.txt", TEXT.encode())
    assert file_process(file_id=file.pk) == "ready"
    attachment = VectorIndexFile.objects.get(index=index, file=file)
    assert (attachment.status, attachment.error_code) == ("failed", "provider_unavailable")

    r = client_for(user).post(
        f"/api/v1/vector-indices/{index.pk}/search/", {"query": "Eiffel"}, format="json"
    )
    assert (r.status_code, r.json()["code"]) == (409, "provider_unavailable")


# --- claims, watchdog, races ---------------------------------------------------------------------


def _stale(file_id, seconds=3600):
    FileMetadata.objects.filter(pk=file_id).update(
        heartbeat_at=timezone.now() - timezone.timedelta(seconds=seconds),
        updated_at=timezone.now() - timezone.timedelta(seconds=seconds),
    )


def test_watchdog_retries_a_dead_workers_file_then_gives_up(user, index, settings, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "agentdeck.files.processing.file_processing_enqueue", lambda fid: queued.append(fid)
    )
    settings.FILE_PROCESSING_MAX_ATTEMPTS = 2
    file = upload(user, index, "a.txt", TEXT.encode())
    dead = file_claim(file_id=file.pk)  # a worker claims it and dies
    assert dead is not None
    _stale(file.pk)
    from django.db import transaction

    with transaction.atomic():
        assert files_watchdog()["retried"] == 1
    assert FileMetadata.objects.get(pk=file.pk).claimed_by is None

    # The dead worker comes back: its claim is gone, it writes nothing.
    with pytest.raises(ClaimLost):
        dead.beat()

    # Second attempt dies too; attempts are used up, so it fails with no chunks left.
    assert file_claim(file_id=file.pk) is not None
    _stale(file.pk)
    assert files_watchdog()["failed"] == 1
    file.refresh_from_db()
    assert (file.status, file.error_code, file.attempts) == ("failed", "processing_timeout", 2)
    assert not Chunk.objects.filter(file=file).exists()


def test_watchdog_requeues_a_file_whose_task_was_lost(user, index, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "agentdeck.files.processing.file_processing_enqueue", lambda fid: queued.append(fid)
    )
    file = upload(user, index, "a.txt", TEXT.encode())
    assert files_watchdog()["requeued"] == 0  # fresh uploads are left to their task
    _stale(file.pk)
    assert files_watchdog()["requeued"] == 1
    assert queued == [file.pk]
    assert files_watchdog()["requeued"] == 0  # not again until another full period


def test_attaching_while_the_worker_runs_is_not_lost(user, index, monkeypatch):
    """The worker's last look for new attachments happens under the file row's lock, so an
    attach that commits while it embeds is picked up in the same task."""
    file = upload(user, index, "a.txt", TEXT.encode())
    late = VectorIndexFactory(owner=user, name="late")
    from agentdeck.files import processing

    real_ingest = processing._ingest
    calls = []

    def ingest(claim, f, attachment, n, total):
        calls.append(attachment.index_id)
        if len(calls) == 1:
            services.vector_index_attach(index=late, file=f)
        return real_ingest(claim, f, attachment, n, total)

    monkeypatch.setattr(processing, "_ingest", ingest)
    assert file_process(file_id=file.pk) == "ready"
    assert calls == [index.pk, late.pk]
    assert Chunk.objects.filter(index=late, file=file).count() == 1


def test_detach_or_delete_during_embedding_writes_nothing(user, index, monkeypatch):
    from agentdeck.files import processing

    file = upload(user, index, "a.txt", TEXT.encode())
    real_embed = HashEmbedder.embed

    def embed(self, texts):
        services.vector_index_detach(index=index, file=file)
        return real_embed(self, texts)

    monkeypatch.setattr(HashEmbedder, "embed", embed)
    assert processing.file_process(file_id=file.pk) == "ready"
    assert not Chunk.objects.exists()

    other = upload(user, index, "b.txt", b"Another file entirely.")

    def embed_and_delete(self, texts):
        services.file_delete(file=FileMetadata.objects.get(pk=other.pk))
        return real_embed(self, texts)

    monkeypatch.setattr(HashEmbedder, "embed", embed_and_delete)
    assert processing.file_process(file_id=other.pk) == "claim lost"
    assert not Chunk.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_uploads_make_one_file(user):
    results, errors = [], []
    barrier = threading.Barrier(4)

    def go():
        try:
            barrier.wait()
            results.append(services.file_upload(owner=user, name="same.txt", data=TEXT.encode()))
        except Exception as e:  # pragma: no cover - the assertion below shows it
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({f.pk for f, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert FileMetadata.objects.filter(owner=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_file_process_it_once(user):
    index = VectorIndexFactory(owner=user, name="docs")
    file = upload(user, index, "a.txt", TEXT.encode())
    outcomes = []
    barrier = threading.Barrier(2)

    def work():
        try:
            barrier.wait()
            outcomes.append(file_process(file_id=file.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["not claimed", "ready"]
    assert Chunk.objects.filter(file=file).count() == 1
