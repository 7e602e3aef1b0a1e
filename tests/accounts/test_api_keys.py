from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from agentdeck.accounts.models import ApiKey
from agentdeck.accounts.services import api_key_create, api_key_hash

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/api-keys/"


def key_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_created_key_shows_its_secret_once_and_stores_only_a_hash(user_client):
    response = user_client.post(KEYS, {"name": "ci"}, format="json")

    assert response.status_code == 201
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("adk_")
    assert len(secret) == 44
    assert body["prefix"] == secret[:12]
    assert body["scopes"] == ["read", "write"]
    stored = ApiKey.objects.get(pk=body["id"])
    assert stored.key_hash == api_key_hash(secret)
    assert secret not in {stored.key_hash, stored.prefix, stored.name}

    listing = user_client.get(KEYS).json()
    assert [k["id"] for k in listing["results"]] == [body["id"]]
    assert "secret" not in listing["results"][0]
    assert "key_hash" not in listing["results"][0]
    assert "secret" not in user_client.get(f"{KEYS}{body['id']}/").json()


def test_api_key_authenticates_and_records_last_use(user):
    api_key, secret = api_key_create(owner=user, name="script")
    assert api_key.last_used_at is None

    response = key_client(secret).get("/api/v1/me")

    assert response.status_code == 200
    assert response.json()["id"] == user.pk
    assert response.json()["auth_method"] == "api_key"
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_revoked_key_is_rejected(user, user_client):
    api_key, secret = api_key_create(owner=user, name="old")
    assert key_client(secret).get("/api/v1/me").status_code == 200

    revoke = user_client.post(f"{KEYS}{api_key.pk}/revoke/")

    assert revoke.status_code == 200
    assert revoke.json()["is_active"] is False
    response = key_client(secret).get("/api/v1/me")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "api_key_revoked"


def test_revoking_twice_keeps_the_first_revocation_time(user, user_client):
    api_key, _ = api_key_create(owner=user, name="k")
    first = user_client.post(f"{KEYS}{api_key.pk}/revoke/").json()["revoked_at"]
    assert user_client.delete(f"{KEYS}{api_key.pk}/").status_code == 204
    api_key.refresh_from_db()
    assert api_key.revoked_at.isoformat().replace("+00:00", "Z") == first


def test_expired_and_unknown_keys_are_rejected(user):
    _, secret = api_key_create(
        owner=user, name="short", expires_at=timezone.now() + timedelta(seconds=1)
    )
    ApiKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert key_client(secret).get("/api/v1/me").json()["code"] == "api_key_expired"
    unknown = key_client("adk_" + "x" * 40).get("/api/v1/me")
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "api_key_invalid"


def test_another_users_key_answers_404(user, other_user, client_for):
    theirs, _ = api_key_create(owner=other_user, name="theirs")
    me = client_for(user)

    for response in (
        me.get(f"{KEYS}{theirs.pk}/"),
        me.post(f"{KEYS}{theirs.pk}/revoke/"),
        me.delete(f"{KEYS}{theirs.pk}/"),
    ):
        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"
    assert me.get(KEYS).json()["results"] == []
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_staff_see_every_key(user, staff_user, client_for):
    api_key, _ = api_key_create(owner=user, name="mine")
    assert client_for(staff_user).get(f"{KEYS}{api_key.pk}/").status_code == 200


def test_read_only_key_cannot_write(user):
    _, secret = api_key_create(owner=user, name="reader", scopes=["read"])
    client = key_client(secret)

    assert client.get(KEYS).status_code == 200
    response = client.post(KEYS, {"name": "another"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_key_cannot_mint_a_key_with_more_scopes(user):
    _, secret = api_key_create(owner=user, name="writer", scopes=["write"])

    response = key_client(secret).post(
        KEYS, {"name": "escalate", "scopes": ["read", "write"]}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["code"] == "scope_escalation"
    assert ApiKey.objects.count() == 1


def test_invalid_create_body_gets_field_errors(user_client):
    response = user_client.post(KEYS, {"scopes": ["admin"], "expires_at": "soon"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    fields = {(e["field"], e["code"]) for e in body["errors"]}
    assert ("name", "required") in fields
    assert ("scopes.0", "invalid_choice") in fields
    assert ("expires_at", "invalid") in fields


def test_expiry_in_the_past_is_refused(user_client):
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = user_client.post(KEYS, {"name": "x", "expires_at": past}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_expiry"


def test_a_key_asks_for_each_scope_at_most_once(user_client):
    # The list was unbounded: 10,000 entries were validated one by one and deduplicated.
    response = user_client.post(KEYS, {"name": "x", "scopes": ["read"] * 10_000}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "scopes"
