"""Scopes: what /me shows is what the caller can use, and a missing scope always reads the
same."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from agentdeck.accounts.models import User
from agentdeck.accounts.services import api_key_create

pytestmark = pytest.mark.django_db

ME = "/api/v1/me"
GRANTS = "/api/v1/credits/grants/"


def key_client(owner, *scopes: str) -> APIClient:
    _, secret = api_key_create(owner=owner, name="k", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_me_shows_a_jwt_only_the_scopes_it_can_use(user, staff_user, client_for):
    # credits:grant is for staff service keys; no session, not even a staff one, can grant.
    for person in (user, staff_user):
        assert client_for(person).get(ME).json()["scopes"] == ["read", "write"]
        grant = client_for(person).post(
            GRANTS, {"user_id": user.pk, "amount": 1, "idempotency_key": "k"}, format="json"
        )
        assert (grant.status_code, grant.json()["code"]) == (403, "insufficient_scope")


def test_a_grant_key_loses_its_power_and_its_listing_when_its_owner_is_demoted(user, staff_user):
    client = key_client(staff_user, "credits:grant", "read")
    body = {"user_id": user.pk, "amount": 1, "idempotency_key": "pay-1"}
    assert client.get(ME).json()["scopes"] == ["credits:grant", "read"]
    assert client.post(GRANTS, body, format="json").status_code == 201

    User.objects.filter(pk=staff_user.pk).update(role=User.Role.USER)

    assert client.get(ME).json()["scopes"] == ["read"]
    refused = client.post(GRANTS, {**body, "idempotency_key": "pay-2"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")


def test_insufficient_scope_has_one_title_whichever_check_refuses(user, client_for):
    from_permission = key_client(user, "read").post(
        "/api/v1/api-keys/", {"name": "x"}, format="json"
    )
    from_grants = client_for(user).post(
        GRANTS, {"user_id": user.pk, "amount": 1, "idempotency_key": "k"}, format="json"
    )

    bodies = [from_permission.json(), from_grants.json()]
    assert [b["code"] for b in bodies] == ["insufficient_scope"] * 2
    assert [b["title"] for b in bodies] == ["Insufficient scope"] * 2
    assert "write" in bodies[0]["detail"]
    assert "credits:grant" in bodies[1]["detail"]
