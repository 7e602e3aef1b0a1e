from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from agentdeck.accounts.models import User
from agentdeck.agents.exceptions import ProviderError
from agentdeck.agents.models import Provider
from agentdeck.core.crypto import encrypt_secret
from agentdeck.core.exceptions import ApplicationError, Conflict, PermissionDenied
from agentdeck.core.httpheaders import HeaderError, check_api_key, check_headers

_UNSET: Any = object()

# Names are unique per owner, and among shared providers (see Provider.Meta.constraints).
_NAME_CONSTRAINTS = ("providers_owner_name_unique", "providers_shared_name_unique")


@contextmanager
def _name_must_be_free(name: str) -> Iterator[None]:
    """Turn a clash on a name constraint into 409 ``provider_name_taken``. The database decides
    (a check-then-insert would race), inside a savepoint so the caller's transaction survives."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as e:
        constraint = getattr(getattr(e.__cause__, "diag", None), "constraint_name", None)
        if constraint not in _NAME_CONSTRAINTS:
            raise
        raise Conflict(
            f"A provider named {name!r} already exists.", code="provider_name_taken"
        ) from None


def _check_credentials(*, api_key: str | None, extra_headers: dict[str, str] | None) -> None:
    """Both are sent in HTTP headers on every call: refuse what cannot be (400
    ``invalid_provider_credentials``) rather than store something that breaks every run."""
    try:
        if api_key:
            check_api_key(api_key)
        if extra_headers is not None:
            check_headers(extra_headers)
    except HeaderError as exc:
        raise ApplicationError(str(exc), code="invalid_provider_credentials") from None


@transaction.atomic
def provider_create(
    *,
    actor: User,
    name: str,
    kind: str,
    base_url: str = "",
    api_key: str = "",
    extra_headers: dict[str, str] | None = None,
    default_model: str = "",
    enabled: bool = True,
    shared: bool = False,
    owner: User | None = None,
) -> Provider:
    """Create a provider, the actor's own unless ``owner`` names another user. ``shared``
    providers (usable by everyone) and providers for another user (the admin) are staff-only."""
    if shared and not actor.is_staff:
        raise PermissionDenied("Only staff can create shared providers.", code="staff_only")
    if owner is not None and owner.pk != actor.pk and not actor.is_staff:
        raise PermissionDenied("Only staff can create providers for others.", code="staff_only")
    _check_credentials(api_key=api_key, extra_headers=extra_headers)
    with _name_must_be_free(name):
        return Provider.objects.create(
            owner=None if shared else (owner or actor),
            name=name,
            kind=kind,
            base_url=base_url,
            api_key_encrypted=encrypt_secret(api_key) if api_key else "",
            extra_headers=extra_headers or {},
            default_model=default_model,
            enabled=enabled,
        )


@transaction.atomic
def provider_update(
    *, provider: Provider, actor: User, api_key: str | None = _UNSET, **fields: Any
) -> Provider:
    """Change a provider; ``api_key=""`` removes the key, leaving it out keeps it."""
    if provider.is_shared and not actor.is_staff:
        raise PermissionDenied("Only staff can change shared providers.", code="staff_only")
    _check_credentials(
        api_key=api_key if isinstance(api_key, str) else None,
        extra_headers=fields.get("extra_headers"),
    )
    for name, value in fields.items():
        setattr(provider, name, value)
    if api_key is not _UNSET and api_key is not None:
        provider.api_key_encrypted = encrypt_secret(api_key) if api_key else ""
    if {"base_url", "kind"} & set(fields) or api_key is not _UNSET:
        provider.models_cache, provider.models_cached_at = [], None
    with _name_must_be_free(provider.name):
        provider.save()
    return provider


def provider_delete(*, provider: Provider, actor: User) -> None:
    if provider.is_shared and not actor.is_staff:
        raise PermissionDenied("Only staff can delete shared providers.", code="staff_only")
    from django.db.models import ProtectedError

    from agentdeck.core.exceptions import Conflict

    try:
        provider.delete()
    except ProtectedError:
        raise Conflict("Agents still use this provider.", code="provider_in_use") from None


def provider_list_models(*, provider: Provider) -> tuple[list[str], bool]:
    """Ask the provider which models it offers; returns (model ids, whether it could say).
    The answer is cached on the row so agent saves can check a model without a network call."""
    if provider.kind == Provider.Kind.MOCK:
        from agentdeck.agents.runtime.mock_model import MOCK_MODELS

        return list(MOCK_MODELS), True
    if provider.kind == Provider.Kind.LITELLM:
        return [], False  # LiteLLM routes to many back ends; there is no single list to ask for
    import openai
    from asgiref.sync import async_to_sync

    from agentdeck.agents.runtime.builder import openai_client
    from agentdeck.agents.runtime.errors import provider_call_failure

    async def fetch() -> list[str]:
        # Its own client (closed below), never a run's shared one.
        client = openai_client(provider, timeout=10, max_retries=1, shared=False)
        try:
            return sorted([m.id async for m in client.models.list()])
        finally:
            await client.close()

    try:
        models = async_to_sync(fetch)()
    except (openai.APIError, OSError) as e:
        # The provider's own words stay in the log (redacted): they can quote the key.
        code, message = provider_call_failure(
            e,
            provider=provider,
            context=f"listing the models of provider {provider.pk}",
            codes=["provider_auth_failed"],
        )
        raise ProviderError(message, code=code) from e
    Provider.objects.filter(pk=provider.pk).update(
        models_cache=models, models_cached_at=timezone.now()
    )
    provider.models_cache, provider.models_cached_at = models, timezone.now()
    return models, True
