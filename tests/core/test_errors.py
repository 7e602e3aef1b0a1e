from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "instance"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:agentdeck:problem:{code}"
    return body


def test_unknown_api_path_is_problem_json(user_client):
    body = assert_problem(user_client.get("/api/v1/does-not-exist/"), 404, "not_found")
    assert body["instance"] == "/api/v1/does-not-exist/"


def test_unknown_path_outside_the_api_is_left_to_django(api_client):
    response = api_client.get("/nowhere")
    assert response.status_code == 404
    assert response["Content-Type"] != "application/problem+json"


def test_method_not_allowed_is_problem_json(user_client):
    body = assert_problem(user_client.post("/api/v1/me"), 405, "method_not_allowed")
    assert "POST" in body["detail"]


def test_plain_view_method_not_allowed_is_problem_json(api_client):
    # /readyz is a plain Django view; under /api/ the middleware would rewrite, here it's JSON.
    assert api_client.post("/readyz").status_code == 405


def test_validation_error_lists_fields(user_client):
    body = assert_problem(
        user_client.post("/api/v1/api-keys/", {"name": ""}, format="json"), 400, "validation_error"
    )
    assert body["errors"] == [
        {"field": "name", "code": "blank", "detail": "This field may not be blank."}
    ]


def test_malformed_json_is_problem_json(user_client):
    response = user_client.post(
        "/api/v1/api-keys/", data="{not json", content_type="application/json"
    )
    assert_problem(response, 400, "parse_error")


def test_unsupported_media_type_is_problem_json(user_client):
    response = user_client.post("/api/v1/api-keys/", data="name=x", content_type="text/plain")
    assert_problem(response, 415, "unsupported_media_type")


@pytest.mark.urls("tests.core.urls_boom")
def test_unexpected_exception_in_drf_view_is_a_logged_500(caplog):
    client = APIClient(raise_request_exception=False)
    body = assert_problem(client.get("/api/v1/boom"), 500, "internal_error")
    assert "kaboom" not in body["detail"]  # no internals leak to clients
    assert any("kaboom" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


@pytest.mark.urls("tests.core.urls_boom")
def test_unexpected_exception_in_plain_view_on_api_path_is_500(caplog):
    client = APIClient(raise_request_exception=False)
    assert_problem(client.get("/api/v1/plain-boom"), 500, "internal_error")


def test_disallowed_host_on_api_path_is_problem_json(api_client):
    response = api_client.get("/api/v1/me", HTTP_HOST="evil.example")
    assert_problem(response, 400, "bad_request")


def test_throttled_requests_get_429_with_retry_after(user_client, settings):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    cache.clear()
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "2/min"}
    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = rates
    try:
        assert user_client.get("/api/v1/me").status_code == 200
        assert user_client.get("/api/v1/me").status_code == 200
        response = user_client.get("/api/v1/me")
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


@pytest.mark.urls("tests.core.urls_boom")
@pytest.mark.parametrize("prefix", ["django-validation", "plain-django-validation"])
@pytest.mark.parametrize(
    ("shape", "errors"),
    [
        (
            "message",
            [{"field": "non_field_errors", "code": "invalid", "detail": "Enter a whole number."}],
        ),
        (
            "list",
            [
                {"field": "non_field_errors", "code": "min_length", "detail": "Too short."},
                {"field": "non_field_errors", "code": "bad", "detail": "Bad."},
            ],
        ),
        (
            "dict",
            [
                {"field": "slug", "code": "unique", "detail": "Taken."},
                {"field": "name", "code": "invalid", "detail": "Required."},
            ],
        ),
    ],
)
def test_a_django_validation_error_is_a_400_listing_its_fields(prefix, shape, errors):
    """The handler used to crash on it (rest_framework.exceptions has no as_serializer_error),
    turning a client's mistake into a 500, from DRF views and plain views alike."""
    client = APIClient(raise_request_exception=False)
    body = assert_problem(client.get(f"/api/v1/{prefix}/{shape}"), 400, "validation_error")
    assert body["errors"] == errors
