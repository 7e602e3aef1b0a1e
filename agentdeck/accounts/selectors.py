from __future__ import annotations

from django.db.models import QuerySet

from agentdeck.accounts.models import ApiKey, User
from agentdeck.accounts.services import api_key_hash
from agentdeck.core.lookups import PkLookup
from agentdeck.core.permissions import scope_to_owner


def api_key_get_by_secret(*, secret: str) -> ApiKey | None:
    return ApiKey.objects.select_related("owner").filter(key_hash=api_key_hash(secret)).first()


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    return scope_to_owner(ApiKey.objects.select_related("owner"), user)


# Every API request reads its user by primary key (agentdeck.core.lookups: the query is built
# once per process).
user_get_by_pk = PkLookup(User)
