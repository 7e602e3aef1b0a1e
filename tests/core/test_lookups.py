"""PkLookup (a row by primary key with the query built once) reads what the ORM reads."""

from __future__ import annotations

import uuid

import pytest

from agentdeck.agents.models import Provider
from agentdeck.agents.selectors import provider_get_by_pk
from agentdeck.agents.services.providers import provider_create

pytestmark = pytest.mark.django_db


def test_a_provider_reads_as_the_orm_reads_it_json_and_secret_included(user):
    provider = provider_create(
        actor=user,
        name="local",
        kind="openai_compatible",
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-test-123",
        extra_headers={"X-Team": "support"},
    )
    Provider.objects.filter(pk=provider.pk).update(models_cache=["m-1", "m-2"])
    orm = Provider.objects.get(pk=provider.pk)
    fast = provider_get_by_pk(provider.pk)
    assert isinstance(fast, Provider)
    for field in Provider._meta.concrete_fields:
        assert getattr(fast, field.attname) == getattr(orm, field.attname), field.name
    assert fast.extra_headers == {"X-Team": "support"}  # JSON decoded, as the ORM does
    assert fast.models_cache == ["m-1", "m-2"]
    assert fast.has_api_key
    assert not fast._state.adding
    assert provider_get_by_pk(str(provider.pk)) == fast  # a string key works too
    assert provider_get_by_pk(uuid.uuid4()) is None
