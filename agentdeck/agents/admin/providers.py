"""Providers in the admin: created and updated through the provider services; the API key
is write-only and shown masked."""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from agentdeck.accounts.models import User
from agentdeck.agents.models import (
    Provider,
)
from agentdeck.agents.services.providers import provider_create, provider_update
from agentdeck.core.crypto import SecretDecryptionError, decrypt_secret, mask_secret
from agentdeck.core.httpheaders import HeaderError, check_api_key, check_headers


class ProviderForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave empty to keep the current key; tick 'remove key' to delete it.",
    )
    remove_api_key = forms.BooleanField(required=False, label="Remove key")
    base_url = forms.URLField(required=False, assume_scheme="https", max_length=500)

    class Meta:
        model = Provider
        fields = ("name", "owner", "kind", "base_url", "default_model", "extra_headers", "enabled")

    # Both are sent in HTTP headers on every call (agentdeck.core.httpheaders).
    def clean_api_key(self) -> str:
        key = (self.cleaned_data.get("api_key") or "").strip()
        if key:
            try:
                check_api_key(key)
            except HeaderError as exc:
                raise forms.ValidationError(str(exc)) from None
        return key

    def clean_extra_headers(self) -> dict[str, str]:
        headers = self.cleaned_data.get("extra_headers") or {}
        try:
            check_headers(headers)
        except HeaderError as exc:
            raise forms.ValidationError(str(exc)) from None
        return headers


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ("name", "kind", "owner", "base_url", "enabled", "masked_key", "created_at")
    list_filter = ("kind", "enabled", ("owner", admin.EmptyFieldListFilter))
    search_fields = ("name", "base_url", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = ("masked_key", "models_cache", "models_cached_at", "created_at", "updated_at")

    @admin.display(description="API key")
    def masked_key(self, obj: Provider) -> str:
        if not obj.api_key_encrypted:
            return "—"
        try:
            return mask_secret(decrypt_secret(obj.api_key_encrypted))
        except SecretDecryptionError:
            return "(cannot decrypt: check SECRETS_ENCRYPTION_KEYS)"

    def save_model(
        self, request: HttpRequest, obj: Provider, form: ProviderForm, change: bool
    ) -> None:
        key = form.cleaned_data.get("api_key")
        if form.cleaned_data.get("remove_api_key"):
            key = ""
        if change:
            fields = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in ProviderForm.Meta.fields
            }
            provider_update(
                provider=obj,
                actor=cast(User, request.user),  # staff, signed in to the admin
                api_key=key
                if key is not None and (key or form.cleaned_data.get("remove_api_key"))
                else None,
                **fields,
            )
        else:
            # No owner: a shared provider, as in the list filter.
            owner = form.cleaned_data.get("owner")
            provider = provider_create(
                actor=cast(User, request.user),  # staff, signed in to the admin
                shared=owner is None,
                owner=owner,
                api_key=key or "",
                **{
                    name: form.cleaned_data[name]
                    for name in ProviderForm.Meta.fields
                    if name != "owner" and name in form.cleaned_data
                },
            )
            # The admin goes on with ``obj`` (its history entry, the redirect): make it the row.
            for field in Provider._meta.concrete_fields:
                setattr(obj, field.attname, getattr(provider, field.attname))
            obj._state = provider._state
