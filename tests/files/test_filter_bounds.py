"""Search filters and attachment attributes are client JSON that becomes SQL and jsonb: their
shape is bounded (400 naming the field, before any query), and the filter query's cost does
not grow with the number of keys."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agentdeck.files import services
from agentdeck.files.attributes import ATTRIBUTES_MAX_KEYS, FILTER_MAX_VALUES
from agentdeck.files.exceptions import InvalidIndex
from agentdeck.files.processing import file_process
from tests.files.test_files_api import problem, upload

pytestmark = pytest.mark.django_db

WORDS = "otters hold hands while they sleep so they do not drift apart " * 20


def ready_file(user, index, name: str, attributes: dict):
    file, _ = services.file_upload(owner=user, name=name, data=(name + " " + WORDS).encode())
    services.vector_index_attach(index=index, file=file, attributes=attributes)
    assert file_process(file_id=file.pk) == "ready"
    return file


def labels(variant: str) -> dict:
    """The most attributes an attachment may have; ``variant`` changes only the last one."""
    values = {f"k{i:02}": f"value-{i}" for i in range(ATTRIBUTES_MAX_KEYS - 1)}
    return {**values, "last": variant}


def search_url(index) -> str:
    return f"/api/v1/vector-indices/{index.pk}/search/"


def touched_search_tables(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if any(t in q["sql"] for t in ("chunks", "vector_index", "vector_indices"))
    ]


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_the_most_filters_allowed_answer_quickly_and_correctly(user, client_for, index, mode):
    wanted = ready_file(user, index, "wanted.txt", labels("yes"))
    ready_file(user, index, "other.txt", labels("no"))
    # Every key, most of them exact, the rest "any of" lists as long as allowed.
    filters: dict = labels("yes")
    filters["k00"] = [f"miss-{i}" for i in range(FILTER_MAX_VALUES - 1)] + ["value-0"]
    filters["last"] = ["maybe"] * (FILTER_MAX_VALUES - 1) + ["yes"]

    started = time.monotonic()
    r = client_for(user).post(
        search_url(index), {"query": "otters sleep", "mode": mode, "filters": filters}, "json"
    )
    elapsed = time.monotonic() - started

    assert r.status_code == 200, r.content
    assert {h["file_id"] for h in r.json()["results"]} == {str(wanted.pk)}
    assert elapsed < 2.0, elapsed  # ~30 ms warm here; 1,000 keys took 9 s before the bound


def test_the_filter_plan_does_not_grow_with_the_number_of_keys(user, client_for, index):
    ready_file(user, index, "a.txt", labels("yes"))
    client = client_for(user)

    def attachment_scans(filters: dict) -> int:
        with CaptureQueriesContext(connection) as ctx:
            r = client.post(
                search_url(index),
                {"query": "otters", "mode": "keyword", "filters": filters},
                format="json",
            )
        assert r.status_code == 200, r.content
        (ranking,) = [q["sql"] for q in ctx.captured_queries if "ts_rank_cd" in q["sql"]]
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (FORMAT JSON) " + ranking)
            plan = cur.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        text = json.dumps(plan)
        return text.count('"Relation Name": "vector_index_files"')

    one = attachment_scans({"k00": "value-0"})
    every = attachment_scans(
        {**labels("yes"), "k01": ["value-1", "other"], "k02": ["value-2", "other"]}
    )
    assert one == every == 1


@pytest.mark.parametrize("keys", [ATTRIBUTES_MAX_KEYS + 1, 1_000, 10_000])
def test_too_many_filter_keys_are_refused_before_any_query(user, client_for, index, keys):
    client = client_for(user)
    filters = {f"key{i}": "v" for i in range(keys)}

    with CaptureQueriesContext(connection) as ctx:
        r = client.post(search_url(index), {"query": "otters", "filters": filters}, format="json")

    assert r.status_code == 400, r.content
    body = problem(r)
    assert body["code"] == "validation_error"
    assert body["errors"] == [
        {"field": "filters", "code": "max_keys", "detail": f"At most {ATTRIBUTES_MAX_KEYS} keys."}
    ]
    assert touched_search_tables(ctx.captured_queries) == []


@pytest.mark.parametrize(
    ("filters", "field", "code"),
    [
        ({"lang": "x" * 513}, "filters.lang", "max_length"),
        ({"x" * 65: "en"}, "filters", "max_key_length"),
        ({"lang": ["en"] * (FILTER_MAX_VALUES + 1)}, "filters.lang", "max_items"),
        ({"lang": [["en"]]}, "filters.lang.0", "max_depth"),
        ({"lang": {"any": "en"}}, "filters.lang", "invalid"),
        ({"lang": [None]}, "filters.lang.0", "invalid"),
        (["lang"], "filters", "invalid"),
        ("lang=en", "filters", "invalid"),
        ({f"k{i}": ["x" * 500] * FILTER_MAX_VALUES for i in range(16)}, "filters", "max_bytes"),
    ],
)
def test_filters_out_of_shape_name_the_place(user, client_for, index, filters, field, code):
    r = client_for(user).post(
        search_url(index), {"query": "otters", "filters": filters}, format="json"
    )
    assert r.status_code == 400, r.content
    assert [(e["field"], e["code"]) for e in problem(r)["errors"]] == [(field, code)]


def test_too_many_file_ids_are_refused(user, client_for, index):
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(101)]
    r = client_for(user).post(
        search_url(index), {"query": "otters", "file_ids": ids}, format="json"
    )
    assert r.status_code == 400
    assert [e["field"] for e in problem(r)["errors"]] == ["file_ids"]


@pytest.mark.parametrize(
    ("attributes", "field", "code"),
    [
        ({f"k{i}": "v" for i in range(ATTRIBUTES_MAX_KEYS + 1)}, "attributes", "max_keys"),
        ({"topic": {"nested": "no"}}, "attributes.topic", "max_depth"),
        ({"topic": ["a", "b"]}, "attributes.topic", "max_depth"),
        ({"topic": None}, "attributes.topic", "invalid"),
        ({"topic": "x" * 513}, "attributes.topic", "max_length"),
        ({"": "empty name"}, "attributes", "invalid"),
        ([1, 2], "attributes", "invalid"),
    ],
)
def test_attributes_out_of_shape_are_refused_on_attach_and_upload(
    user, client_for, index, attributes, field, code
):
    client = client_for(user)
    file, _ = services.file_upload(owner=user, name="a.txt", data=b"some text")

    attach = client.post(
        f"/api/v1/vector-indices/{index.pk}/files/",
        {"file_id": str(file.pk), "attributes": attributes},
        format="json",
    )
    uploaded = upload(
        client,
        "b.txt",
        b"other text",
        vector_index_ids=str(index.pk),
        attributes=json.dumps(attributes),
    )

    for r in (attach, uploaded):
        assert r.status_code == 400, r.content
        assert [(e["field"], e["code"]) for e in problem(r)["errors"]] == [(field, code)]
    assert not index.attachments.exists()


def test_attributes_at_the_bound_are_stored(user, client_for, index):
    file, _ = services.file_upload(owner=user, name="a.txt", data=b"some text")
    attributes = {f"k{i:02}": "v" * 512 for i in range(ATTRIBUTES_MAX_KEYS)}
    r = client_for(user).post(
        f"/api/v1/vector-indices/{index.pk}/files/",
        {"file_id": str(file.pk), "attributes": attributes},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["attributes"] == attributes


def test_services_refuse_out_of_shape_attributes_and_filters_too(user, index):
    """Callers other than the API (the admin, tasks) meet the same bounds, as domain errors."""
    file, _ = services.file_upload(owner=user, name="a.txt", data=b"some text")
    with pytest.raises(InvalidIndex) as caught:
        services.vector_index_attach(index=index, file=file, attributes={"a": {"b": 1}})
    assert caught.value.code == "invalid_attributes"
    assert "attributes.a" in caught.value.detail
    with pytest.raises(InvalidIndex) as caught:
        services.vector_index_query(
            index=index, query="x", attributes={f"k{i}": 1 for i in range(1000)}
        )
    assert caught.value.code == "invalid_filter"
