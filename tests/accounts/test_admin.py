from __future__ import annotations

import pytest

from agentdeck.accounts.models import ApiKey, User
from agentdeck.accounts.services import admin_user_ensure, api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_admin_shows_agentdeck_name(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b"agentdeck administration" in response.content


def test_api_key_pages_never_show_the_secret_or_hash(staff_client, user):
    api_key, secret = api_key_create(owner=user, name="prod script")

    listing = staff_client.get("/admin/accounts/apikey/")
    detail = staff_client.get(f"/admin/accounts/apikey/{api_key.pk}/change/")

    for page in (listing, detail):
        assert page.status_code == 200
        assert api_key.prefix.encode() in page.content
        assert secret.encode() not in page.content
        assert api_key.key_hash.encode() not in page.content


def test_admin_revoke_action_goes_through_the_service(staff_client, user):
    a, _ = api_key_create(owner=user, name="a")
    b, _ = api_key_create(owner=user, name="b")

    response = staff_client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke_keys", "_selected_action": [str(a.pk), str(b.pk)]},
        follow=True,
    )

    assert b"Revoked 2 API key(s)." in response.content
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 0


def test_staff_can_view_users_but_only_admins_can_change_them(client, staff_user, user):
    client.force_login(staff_user)
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get(f"/admin/accounts/user/{user.pk}/change/").status_code == 200
    assert (
        client.post(f"/admin/accounts/user/{user.pk}/delete/", {"post": "yes"}).status_code == 403
    )


def test_plain_users_cannot_enter_the_admin(client, user):
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_admin_user_ensure_generates_a_password_once():
    user, generated = admin_user_ensure(email="boss@example.com", password=None)
    assert generated
    assert user.check_password(generated)
    assert user.role == User.Role.ADMIN

    again, generated_again = admin_user_ensure(email="boss@example.com", password=None)
    assert again.pk == user.pk
    assert generated_again is None

    _, _ = admin_user_ensure(email="boss@example.com", password="chosen-Password-1")
    user.refresh_from_db()
    assert user.check_password("chosen-Password-1")
