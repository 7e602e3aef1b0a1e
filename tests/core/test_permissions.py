from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser

from agentdeck.accounts.models import ApiKey
from agentdeck.accounts.services import api_key_create
from agentdeck.core.permissions import IsOwnerOrStaff, scope_to_owner

pytestmark = pytest.mark.django_db


def test_scope_to_owner_shows_users_their_own_rows_and_staff_everything(
    user, other_user, staff_user
):
    mine, _ = api_key_create(owner=user, name="mine")
    theirs, _ = api_key_create(owner=other_user, name="theirs")

    assert list(scope_to_owner(ApiKey.objects.all(), user)) == [mine]
    assert set(scope_to_owner(ApiKey.objects.all(), staff_user)) == {mine, theirs}
    assert list(scope_to_owner(ApiKey.objects.all(), AnonymousUser())) == []


def test_owner_or_staff_object_permission(user, other_user, staff_user):
    api_key, _ = api_key_create(owner=user, name="k")
    permission = IsOwnerOrStaff()
    view = SimpleNamespace()

    def allowed(who) -> bool:
        return permission.has_object_permission(SimpleNamespace(user=who), view, api_key)

    assert allowed(user)
    assert allowed(staff_user)
    assert not allowed(other_user)
