from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from agentdeck.core.models import TimestampedModel


class Provider(TimestampedModel):
    """Where models come from: a kind, a base URL and an API key.

    ``owner`` NULL means a shared provider that staff created and every user may use; otherwise
    it is the owner's own (bring your own key) and only they (and staff) see it.
    The API key is stored encrypted (``agentdeck.core.crypto``) and never leaves the server:
    the API shows ``has_api_key`` and the admin a masked form.
    """

    class Kind(models.TextChoices):
        OPENAI = "openai", "OpenAI (Responses API)"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible (Chat Completions)"
        LITELLM = "litellm", "LiteLLM"
        MOCK = "mock", "Mock (offline, deterministic)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="providers",
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    base_url = models.URLField(max_length=500, blank=True, default="")
    api_key_encrypted = models.TextField(blank=True, default="")
    extra_headers = models.JSONField(default=dict, blank=True)
    default_model = models.CharField(max_length=200, blank=True, default="")
    enabled = models.BooleanField(default=True)
    # What GET .../models/ last saw, so agent saves can check a model without a network call.
    models_cache = models.JSONField(default=list, blank=True)
    models_cached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "providers"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="providers_owner_name_unique"),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(owner__isnull=True),
                name="providers_shared_name_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["openai", "openai_compatible", "litellm", "mock"]),
                name="providers_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def is_shared(self) -> bool:
        return self.owner_id is None

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)
