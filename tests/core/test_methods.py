"""A method an endpoint does not answer is a 405 with ``Allow``, whoever asks and however
(agentdeck.core.middleware.AllowedMethodsMiddleware), on every path of the API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from agentdeck.accounts.services import api_key_create
from tests.core.api_surface import WRITE_METHODS, documented_methods, make_objects
from tests.core.test_errors import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def callers(user, user_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    objects = make_objects(user)
    # Django's test client skips CSRF unless told: a browser-like client does not.
    jwt = APIClient(enforce_csrf_checks=True)
    jwt._credentials = user_client._credentials
    read_only = APIClient(enforce_csrf_checks=True)
    _, secret = api_key_create(owner=user, name="reader", scopes=["read"])
    read_only.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    anonymous = APIClient(enforce_csrf_checks=True)
    return objects, {"jwt": jwt, "read-only API key": read_only, "anonymous": anonymous}


def test_every_method_an_endpoint_does_not_answer_is_a_405_with_allow(callers):
    objects, clients = callers
    checked = 0
    for template, documented in documented_methods().items():
        for method in WRITE_METHODS:
            if method in documented:
                continue
            for path in (objects.path(template), objects.foreign_path(template)):
                for who, client in clients.items():
                    response = client.generic(method, path)
                    body = assert_problem(response, 405, "method_not_allowed")
                    assert method in body["detail"], (who, method, path)
                    allowed = {m.strip() for m in response["Allow"].split(",")}
                    assert documented <= allowed <= documented | {"HEAD", "OPTIONS"}, (
                        who,
                        method,
                        path,
                        response["Allow"],
                    )
                    checked += 1
    assert checked > 100


def test_write_methods_on_the_run_event_stream_are_405(callers):
    """The issue's case: the negotiated JSON/SSE view is a plain Django view, whose CSRF check
    answered 403 before the method was looked at."""
    objects, clients = callers
    run = objects.by_resource["runs"]
    for method in WRITE_METHODS:
        response = clients["jwt"].generic(
            method, f"/api/v1/runs/{run}/events/", HTTP_ACCEPT="text/event-stream"
        )
        assert_problem(response, 405, "method_not_allowed")
        assert response["Allow"] == "GET, HEAD, OPTIONS"


def test_allowed_methods_still_reach_authentication(callers):
    _, clients = callers
    response = clients["anonymous"].post("/api/v1/agents/", {}, format="json")
    assert_problem(response, 401, "not_authenticated")
    response = clients["read-only API key"].post("/api/v1/agents/", {}, format="json")
    assert_problem(response, 403, "insufficient_scope")
