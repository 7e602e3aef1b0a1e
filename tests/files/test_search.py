"""Search restricted to one index among many, on both paths (exact and HNSW), and expiry."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.utils import timezone

from agentdeck.files import services
from agentdeck.files.embeddings import HashEmbedder
from agentdeck.files.models import Chunk, FileMetadata, VectorIndex
from agentdeck.files.processing import files_watchdog
from agentdeck.files.search import vector_candidates
from tests.factories import (
    ChunkFactory,
    FileMetadataFactory,
    VectorIndexFactory,
    VectorIndexFileFactory,
)

pytestmark = pytest.mark.django_db

WORDS = [f"w{i}" for i in range(400)]


@pytest.fixture
def many_indices(user):
    """8 indices x 150 chunks of random word salad, inserted directly (ingestion is tested
    elsewhere); returns the indices."""
    rng = random.Random(7)
    embedder = HashEmbedder(384)
    indices = []
    for n in range(8):
        index = VectorIndexFactory(owner=user, name=f"i{n}")
        file = VectorIndexFileFactory(index=index, file__name=f"f{n}.txt", chunk_count=150).file
        texts = [" ".join(rng.choices(WORDS, k=12)) for _ in range(150)]
        Chunk.objects.bulk_create(
            ChunkFactory.build(index=index, file=file, position=i, text=t, embedding=v)
            for i, (t, v) in enumerate(zip(texts, embedder.embed(texts), strict=True))
        )
        VectorIndex.objects.filter(pk=index.pk).update(chunk_count=150, file_count=1)
        index.refresh_from_db()
        indices.append(index)
    with connection.cursor() as cur:
        cur.execute("ANALYZE chunks")
    return indices


def exact(index, vector, k):
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id FROM chunks WHERE index_id = %s "
            "ORDER BY embedding::vector(384) <=> %s::vector(384), id LIMIT %s",
            [str(index.pk), str(vector), k],
        )
        return [r[0] for r in cur.fetchall()]


@pytest.mark.parametrize("exact_max", [1_000_000, 0], ids=["exact path", "hnsw path"])
def test_one_index_among_many_returns_full_correct_results(many_indices, settings, exact_max):
    settings.VECTOR_SEARCH_EXACT_MAX_CHUNKS = exact_max
    embedder = HashEmbedder(384)
    rng = random.Random(11)
    recalls = []
    for target in many_indices:
        query = embedder.embed([" ".join(rng.choices(WORDS, k=6))])[0]
        got = vector_candidates(index=target, vector=query, limit=10)
        assert len(got) == 10  # full results, although the index holds 1/8 of the rows
        ids = [cid for cid, _ in got]
        assert set(Chunk.objects.filter(pk__in=ids).values_list("index_id", flat=True)) == {
            target.pk
        }
        distances = [d for _, d in got]
        assert distances == sorted(distances)
        recalls.append(len(set(ids) & set(exact(target, query, 10))) / 10)
    if exact_max:
        assert recalls == [1.0] * len(recalls)
    else:
        assert sum(recalls) / len(recalls) >= 0.9


def test_expired_indices_lose_chunks_and_refuse_searches(user, client_for):
    index = services.vector_index_create(
        owner=user, name="temp", embedder="hash", expires_after_days=1
    )
    assert index.expires_at is not None
    file, _ = services.file_upload(
        owner=user, name="a.txt", data=b"Some searchable words.", vector_indices=[index]
    )
    from agentdeck.files.processing import file_process

    assert file_process(file_id=file.pk) == "ready"
    VectorIndex.objects.filter(pk=index.pk).update(
        expires_at=timezone.now() - timezone.timedelta(minutes=1)
    )
    assert files_watchdog()["expired"] == 1
    index.refresh_from_db()
    assert (index.status, index.chunk_count) == ("expired", 0)
    assert not Chunk.objects.filter(index=index).exists()
    assert FileMetadata.objects.filter(pk=file.pk).exists()  # files stay
    r = client_for(user).post(
        f"/api/v1/vector-indices/{index.pk}/search/", {"query": "words"}, format="json"
    )
    assert r.status_code == 409
    assert r.json()["code"] == "vector_index_expired"


def test_a_short_graph_walk_falls_back_to_the_exact_read(many_indices, user, settings):
    """A query whose neighbourhood holds none of the index's rows: the HNSW walk (limited to a
    few hundred tuples here, and the planner pushed onto the graph) gives up short of `limit`,
    and the exact read answers instead, so the result is still full and exact."""
    settings.VECTOR_SEARCH_EXACT_MAX_CHUNKS = 0
    far = VectorIndexFactory(owner=user, name="far")
    file = FileMetadataFactory(owner=user, name="far.txt")
    texts = [f"zeta{i} omega{i} kappa{i}" for i in range(40)]
    Chunk.objects.bulk_create(
        ChunkFactory.build(index=far, file=file, position=i, text=t, embedding=v)
        for i, (t, v) in enumerate(zip(texts, HashEmbedder(384).embed(texts), strict=True))
    )
    VectorIndex.objects.filter(pk=far.pk).update(chunk_count=40)
    far.refresh_from_db()
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    query = HashEmbedder(384).embed([" ".join(WORDS[:8])])[0]  # near the other indices' rows
    with connection.cursor() as cur:
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cur.execute(f"SET {setting} = off")
        cur.execute("SET hnsw.max_scan_tuples = 200")
    try:
        with connection.execute_wrapper(record):
            got = vector_candidates(index=far, vector=query, limit=30)
    finally:
        with connection.cursor() as cur:
            cur.execute("RESET ALL")
    assert any("ORDER BY c.embedding" in s for s in statements)  # the graph was tried first
    assert any("MATERIALIZED" in s for s in statements)  # then the exact read
    assert [cid for cid, _ in got] == exact(far, query, 30)


@pytest.mark.parametrize("page", [None, 3])
def test_a_hit_as_the_api_sends_it_is_what_its_serializer_documents(page):
    """The search view builds its hits with SearchHit.as_dict instead of SearchHitSerializer
    (which the OpenAPI schema shows): both must give the same JSON."""
    import json
    import uuid
    from decimal import Decimal

    from rest_framework.utils.encoders import JSONEncoder

    from agentdeck.files.api.serializers import SearchHitSerializer
    from agentdeck.files.search import SearchHit

    hit = SearchHit(
        chunk_id=7,
        score=Decimal("0.8125"),
        text="Refunds take 5 days.",
        file_id=uuid.uuid4(),
        file_name="policy.pdf",
        position=2,
        page=page,
        char_start=100,
        char_end=120,
        attributes={"team": "support", "year": 2026},
    )
    as_sent = json.loads(json.dumps(hit.as_dict(), cls=JSONEncoder))
    documented = json.loads(json.dumps(SearchHitSerializer(hit).data, cls=JSONEncoder))
    assert as_sent == documented
    assert list(as_sent) == list(documented)
