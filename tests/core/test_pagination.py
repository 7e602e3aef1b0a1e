"""Cursor pagination on every list: forged cursors are a 400 ``invalid_cursor``, real ones walk
the list both ways, ``page_size`` is checked (agentdeck.core.pagination)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.test import RequestFactory
from rest_framework.request import Request

from agentdeck.agents.models import AgentRun
from agentdeck.core.exceptions import ApplicationError
from agentdeck.core.pagination import CreatedAtCursorPagination
from tests.core.api_surface import make_objects, operations
from tests.core.test_errors import assert_problem

pytestmark = pytest.mark.django_db


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def objects(user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return make_objects(user)


def paginated_lists(client, objects) -> list[str]:
    """Every GET operation whose answer is a cursor page, as a concrete path."""
    found = []
    for operation in operations("GET"):
        path = objects.path(operation.template)
        response = client.get(path)
        assert response.status_code == 200, (path, response.content)
        body = response.json() if response["Content-Type"] == "application/json" else None
        if isinstance(body, dict) and {"next", "previous", "results"} <= set(body):
            found.append(path)
    return found


def cursor_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["cursor"][0]


# (A raw NUL in ?cursor= never reaches the paginator: tests/core/test_request_input.py.)
FORGED = {
    "a year for a timestamp": b64("p=2024"),
    "NUL, reversed": b64("r=1&p=%00"),
    "text for a position": b64("p=abc"),
    "a huge offset": b64("o=99999999999999999999"),
    "a negative offset": b64("o=-1"),
    "a naive timestamp": b64("p=2024-01-01 00:00:00"),
    "not base64": "!!!",
    "not ASCII": "cursor\u2603",
    "very long": "A" * 5000,
}


def test_every_list_refuses_a_cursor_it_did_not_issue(user_client, objects):
    lists = paginated_lists(user_client, objects)
    # The lists today; the check above finds any new one by the shape of its answer.
    assert len(lists) >= 11, lists
    issued = {}
    for path in lists:
        first = user_client.get(path, {"page_size": 1}).json()
        assert first["next"], f"{path} has one page only; make_objects should give it two"
        issued[path] = cursor_of(first["next"])
    for path in lists:
        elsewhere = next(c for p, c in issued.items() if p != path)
        cursors = {
            **FORGED,
            "another list's": elsewhere,
            "truncated": issued[path][:-4],
            "with one character changed": issued[path][:10]
            + ("B" if issued[path][10] != "B" else "C")
            + issued[path][11:],
        }
        for why, cursor in cursors.items():
            response = user_client.get(path, {"cursor": cursor})
            body = assert_problem(response, 400, "invalid_cursor")
            assert "cursor" in body["detail"], (path, why)


def test_issued_cursors_walk_every_list_forward_and_back(user_client, objects):
    for path in paginated_lists(user_client, objects):
        everything = [item for item in user_client.get(path).json()["results"]]
        seen, page = [], user_client.get(path, {"page_size": 1}).json()
        pages = [page]
        while True:
            seen.extend(page["results"])
            if not page["next"]:
                break
            page = user_client.get(page["next"]).json()
            pages.append(page)
        assert seen == everything, path
        # And back from the last page, by the previous links.
        back = []
        while page["previous"]:
            page = user_client.get(page["previous"]).json()
            back = page["results"] + back
        assert back == everything[:-1], path


def test_an_empty_cursor_is_the_first_page(user_client, objects):
    first = user_client.get("/api/v1/runs/").json()
    assert user_client.get("/api/v1/runs/?cursor=").json() == first


def paginator_request(path: str, **query: str) -> Request:
    return Request(RequestFactory().get(path, query))


def test_a_signed_cursor_whose_position_does_not_fit_the_ordering_is_refused(objects, user):
    """The second lock: a cursor signed for the list but whose position is not a value of the
    ordering field (here: signed by hand, as a leaked key would allow) never reaches SQL."""
    paginator = CreatedAtCursorPagination()
    path = "/api/v1/runs/"
    salt = f"agentdeck.core.pagination:{path}:-created_at,-pk"
    for position in ("2024", "abc", "2024-01-01 00:00:00", "\x00"):
        signed = signing.Signer(salt=salt).sign(f"p={position}" if position != "\x00" else "p=%00")
        cursor = base64.urlsafe_b64encode(signed.encode()).decode()
        with pytest.raises(ApplicationError) as refused:
            paginator.paginate_queryset(
                AgentRun.objects.all(), paginator_request(path, cursor=cursor)
            )
        assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


@pytest.mark.parametrize("size", ["abc", "-1", "0", "1.5", "\u0661", "1e3", " 2"])
def test_page_size_that_is_not_a_positive_whole_number_is_a_400(user_client, size):
    body = assert_problem(
        user_client.get("/api/v1/runs/", {"page_size": size}), 400, "validation_error"
    )
    assert [e["field"] for e in body["errors"]] == ["page_size"]


def test_a_page_size_over_the_maximum_is_capped(user_client, objects):
    response = user_client.get("/api/v1/runs/", {"page_size": "99999999999999999999"})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2
