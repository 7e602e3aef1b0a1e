"""Turn a pinned agent version into an SDK agent graph (convention 9: all provider wiring lives
here). Nothing in this module touches the network until the SDK calls the model."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from agents import ModelSettings
from agents.agent_output import AgentOutputSchemaBase
from agents.exceptions import ModelBehaviorError
from agents.models.interface import Model
from django.conf import settings
from openai.types.shared import Reasoning

from agentdeck.agents.models import Provider
from agentdeck.agents.runtime.clients import current_client_pool, provider_http_client
from agentdeck.core.crypto import decrypt_secret
from agentdeck.core.exceptions import ApplicationError
from agentdeck.core.httpheaders import HeaderError, check_api_key, check_headers
from agentdeck.core.redaction import add_secrets

if TYPE_CHECKING:
    # Imported lazily at run time (convention 9); graph imports this module.
    from openai import AsyncOpenAI

    from agentdeck.agents.runtime.graph import RunGraph


class ProviderUnavailable(ApplicationError):
    status = 409
    code = "provider_unavailable"
    title = "Provider unavailable"


def provider_credentials(provider: Provider) -> tuple[str | None, dict[str, str]]:
    """The provider's API key (decrypted; None without one) and extra headers, each checked to
    be sendable in an HTTP header (``agentdeck.core.httpheaders``).

    The API refuses other values when they are written, but a row written before it did (or by
    other means) would otherwise fail inside the HTTP client on every call, as a 500 on
    ``/models/`` and ``internal_error`` on every run: ``ProviderUnavailable`` says what to fix.
    The message names the header, never a value.

    Both are added to the current redaction scope (a run's: :func:`provider_secrets`), since
    whoever sends them needs what comes back redacted with them."""
    key = decrypt_secret(provider.api_key_encrypted) if provider.api_key_encrypted else None
    headers = provider.extra_headers or {}
    add_secrets(_secret_values(key, headers))
    try:
        if key is not None:
            check_api_key(key)
    except HeaderError as exc:
        raise ProviderUnavailable(
            f"Provider {provider.name}'s API key cannot be sent: {exc} Set it again."
        ) from None
    try:
        check_headers(headers)
    except HeaderError as exc:
        raise ProviderUnavailable(
            f"Provider {provider.name}'s extra headers cannot be sent: {exc} Set them again."
        ) from None
    return key, headers


def provider_secrets(provider: Provider) -> list[str]:
    """The values a provider's requests carry that must never be shown: its API key and the
    values of its extra headers (where some providers put a key of their own). Each is added
    to the current redaction scope (a run's), so what the run records is redacted with them."""
    key = decrypt_secret(provider.api_key_encrypted) if provider.api_key_encrypted else None
    secrets = _secret_values(key, provider.extra_headers or {})
    add_secrets(secrets)
    return secrets


def _secret_values(key: str | None, headers: dict[str, Any]) -> list[str]:
    return [str(v) for v in headers.values()] + ([key] if key else [])


def openai_client(
    provider: Provider,
    *,
    timeout: float | None = None,
    max_retries: int | None = None,
    shared: bool = True,
) -> AsyncOpenAI:
    """An ``AsyncOpenAI`` for a provider. The client's own retry loop (exponential backoff with
    jitter, honouring Retry-After) retries 408/409/429/5xx, timeouts and connection errors
    ``PROVIDER_MAX_RETRIES`` times before the run fails.

    With ``shared`` and a client pool current (``agentdeck.agents.runtime.clients``), the pool's
    client for this provider, which its caller must not close; otherwise a new client, which
    its caller closes. Either way the provider's secrets join the current redaction scope
    (:func:`provider_credentials`), so a run that reuses a client still redacts them."""
    from openai import AsyncOpenAI

    key, headers = provider_credentials(provider)
    if timeout is None:
        timeout = settings.PROVIDER_TIMEOUT_SECONDS
    if max_retries is None:
        max_retries = settings.PROVIDER_MAX_RETRIES

    def build() -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=provider.base_url or None,
            # The SDK refuses a missing key; local servers (Ollama, vLLM) accept any string.
            api_key=key or "not-needed",
            default_headers=headers or None,
            timeout=timeout,
            max_retries=max_retries,
            http_client=provider_http_client(timeout=timeout),
        )

    pool = current_client_pool() if shared else None
    if pool is None:
        return build()
    client: AsyncOpenAI = pool.get(
        str(provider.pk),
        timeout=timeout,
        max_retries=max_retries,
        fingerprint=_client_fingerprint(provider, key, headers),
        build=build,
    )
    return client


def _client_fingerprint(provider: Provider, key: str | None, headers: dict[str, str]) -> str:
    """What a provider's client is built from, digested: a change (a rotated key, another base
    URL or headers) makes the pool build a new client. The key is the decrypted one, so
    re-encrypting it under a new ``SECRETS_ENCRYPTION_KEYS`` key changes nothing."""
    material = json.dumps([provider.base_url, key, headers], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


def build_model(provider: Provider, model_name: str) -> Model:
    if not provider.enabled:
        if (pool := current_client_pool()) is not None:
            pool.retire_provider(str(provider.pk))
        raise ProviderUnavailable(f"Provider {provider.name} is disabled.")
    kind = provider.kind
    if kind == Provider.Kind.MOCK:
        from agentdeck.agents.runtime.mock_model import MockModel

        return MockModel(delay_per_token=settings.MOCK_MODEL_DELAY_PER_TOKEN)
    if kind == Provider.Kind.OPENAI:
        from agents import OpenAIResponsesModel

        return OpenAIResponsesModel(model=model_name, openai_client=openai_client(provider))
    if kind == Provider.Kind.OPENAI_COMPATIBLE:
        from agents import OpenAIChatCompletionsModel

        return OpenAIChatCompletionsModel(model=model_name, openai_client=openai_client(provider))
    if kind == Provider.Kind.LITELLM:
        try:
            from agents.extensions.models.litellm_model import LitellmModel
        except ImportError as e:  # the optional extra: pip install 'agentdeck[litellm]'
            raise ProviderUnavailable("LiteLLM is not installed on this server.") from e
        key, _ = provider_credentials(provider)
        return LitellmModel(model=model_name, base_url=provider.base_url or None, api_key=key)
    raise ProviderUnavailable(f"Unknown provider kind {kind!r}.")


def build_model_settings(values: dict[str, Any]) -> ModelSettings:
    # The SDK asks for streamed usage only from OpenAI's own URL; every run needs its tokens
    # counted, so always ask (Chat Completions' stream_options.include_usage).
    kwargs: dict[str, Any] = {"include_usage": True}
    for key in ("temperature", "top_p", "tool_choice", "parallel_tool_calls"):
        if values.get(key) is not None:
            kwargs[key] = values[key]
    if values.get("max_output_tokens") is not None:
        kwargs["max_tokens"] = values["max_output_tokens"]
    if values.get("reasoning_effort"):
        kwargs["reasoning"] = Reasoning(effort=values["reasoning_effort"])
    return ModelSettings(**kwargs)


class JsonSchemaOutput(AgentOutputSchemaBase):
    """Structured output described by a user's JSON Schema (not a Python type). The model is asked
    for JSON matching it, and its answer is validated; a mismatch fails the run with
    ``output_invalid``."""

    def __init__(self, schema: dict[str, Any], name: str = "output") -> None:
        from jsonschema import Draft202012Validator

        self._schema = schema
        self._name = name
        self._validator = Draft202012Validator(schema)

    def is_plain_text(self) -> bool:
        return False

    def name(self) -> str:
        return self._name

    def json_schema(self) -> dict[str, Any]:
        return self._schema

    def is_strict_json_schema(self) -> bool:
        # Users write ordinary JSON Schema; OpenAI's strict mode would reject most of it.
        return False

    def validate_json(self, json_str: str) -> Any:
        try:
            value = json.loads(json_str)
        except json.JSONDecodeError as e:
            raise ModelBehaviorError(f"Model output is not JSON: {e}") from e
        errors = sorted(self._validator.iter_errors(value), key=lambda err: list(err.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            raise ModelBehaviorError(
                f"Model output does not match the schema at {where}: {errors[0].message}"
            )
        return value


def build_graph(snapshot: dict[str, Any], *, owner_id: str) -> RunGraph:
    """The SDK agent graph for a version snapshot (see ``agentdeck.agents.runtime.graph``)."""
    from agentdeck.agents.runtime.graph import GraphBuilder

    return GraphBuilder(owner_id=owner_id).build(snapshot)
