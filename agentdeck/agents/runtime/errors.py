"""Map whatever stopped a run to a stable error code (documented in the README).

Upstream text never reaches users: a provider's error body can echo the credential it was
sent, and the run's error and events are visible to everyone running a public agent.
A provider failure gets a stable code and the message written here for that code (with the
HTTP status, which is ours to interpret); its raw text goes to the server log, redacted
(agentdeck.core.redaction). :func:`provider_failure` is that mapping for every provider call
(runs, model listing, embeddings).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable
from typing import Any

from agentdeck.core.redaction import exception_secrets, log_exception, redact

logger = logging.getLogger(__name__)

# code -> what it means; the API and admin show the code, clients switch on it. For the codes a
# provider's answer leads to, this is also the whole message users see.
RUN_ERROR_CODES = {
    "provider_error": "The model provider answered with an error, or could not be reached, after retries.",
    "provider_timeout": "The model provider did not answer in time, after retries.",
    "provider_auth_failed": "The model provider refused the API key.",
    "provider_unavailable": "The provider is disabled or cannot be used on this server.",
    "model_rejected": "The provider does not know or refuses the agent's model.",
    "max_turns_exceeded": "The run needed more turns than max_turns allows.",
    "output_invalid": "The model's final output did not match the agent's output schema.",
    "tool_error": "A tool failed in a way the model could not recover from.",
    "guardrail_tripped": "An input or output guardrail stopped the run.",
    "run_timeout": "The run took longer than RUN_TIMEOUT_SECONDS.",
    "budget_exhausted": "The run's cost reached its credit hold (the agent's per-run cap).",
    "approval_timeout": "Nobody answered the run's pending approvals in time.",
    "worker_lost": "The worker executing the run stopped heartbeating (it crashed or was killed).",
    "internal_error": "A bug in agentdeck; it has been logged.",
}


class RunTimedOut(Exception):
    pass


def provider_failure(
    exc: BaseException, *, secrets: Iterable[str | None] = (), context: str = ""
) -> tuple[str, str] | None:
    """(code, message) for an exception raised by a call to a model provider (openai client,
    LiteLLM), or None when it is not one. The message is ours; the exception's own text is
    logged at WARNING with ``secrets`` (the provider's key and extra header values), the
    credentials the failed request carried and anything credential-shaped redacted."""
    import openai
    from agents import exceptions as sdk

    status = getattr(exc, "status_code", None)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        code = "provider_auth_failed"
    elif isinstance(exc, openai.NotFoundError) or (
        isinstance(exc, openai.BadRequestError) and "model" in _upstream_text(exc).lower()
    ):
        code = "model_rejected"
    elif isinstance(
        exc, (openai.APITimeoutError, sdk.ModelTimeoutError, asyncio.TimeoutError, TimeoutError)
    ):
        code = "provider_timeout"
    elif isinstance(exc, openai.APIError) or type(exc).__module__.startswith("litellm"):
        code = "provider_error"
    else:
        return None
    known = [*secrets, *exception_secrets(exc)]
    logger.warning(
        "%sprovider call failed with %s (%s, HTTP %s, request id %s): %s",
        f"{context}: " if context else "",
        code,
        type(exc).__name__,
        status if isinstance(status, int) else "-",
        redact(str(getattr(exc, "request_id", None) or "-"), known),
        redact(str(exc) or type(exc).__name__, known),
    )
    return code, provider_message(code, exc)


def provider_call_failure(
    exc: BaseException, *, provider: Any, context: str, codes: Collection[str]
) -> tuple[str, str]:
    """:func:`provider_failure` for a call made outside a run (listing models, embedding), whose
    API promises fewer codes: any code not in ``codes`` becomes ``provider_error``."""
    from agentdeck.agents.runtime.builder import provider_secrets

    secrets = provider_secrets(provider)
    failure = provider_failure(exc, secrets=secrets, context=context)
    if failure is None:  # not the provider's answer (a socket error, say): logged here
        log_exception(logger, logging.WARNING, "%s failed", context, exc=exc, secrets=secrets)
    if failure is None or failure[0] not in codes:
        return "provider_error", provider_message("provider_error", exc)
    return failure


def provider_message(code: str, exc: BaseException) -> str:
    """The message users see for a provider failure: the code's text and the HTTP status."""
    status = getattr(exc, "status_code", None)
    message = RUN_ERROR_CODES[code]
    return f"{message} (HTTP {status})" if isinstance(status, int) else message


def classify_exception(
    exc: BaseException, *, secrets: Iterable[str | None] = (), context: str = ""
) -> tuple[str, str]:
    """(code, message) for an exception that ended a run. Messages of agentdeck's own
    exceptions are kept (redacted: a tool's message may quote a URL or an MCP server's answer);
    a provider's are replaced (:func:`provider_failure`)."""
    from agents import exceptions as sdk

    from agentdeck.agents.runtime.builder import ProviderUnavailable
    from agentdeck.core.crypto import SecretDecryptionError
    from agentdeck.core.exceptions import ApplicationError

    known = list(secrets)
    message = redact(str(exc) or type(exc).__name__, known)
    if isinstance(exc, RunTimedOut):
        return "run_timeout", message
    if isinstance(exc, ProviderUnavailable):
        return "provider_unavailable", redact(exc.detail, known)
    if isinstance(exc, ApplicationError):  # raised while building the graph: tool_error and kin
        return (exc.code if exc.code in RUN_ERROR_CODES else "tool_error"), redact(
            exc.detail, known
        )
    if isinstance(exc, SecretDecryptionError):
        return "provider_unavailable", message
    if isinstance(exc, sdk.MaxTurnsExceeded):
        return "max_turns_exceeded", message
    if isinstance(
        exc,
        (
            sdk.InputGuardrailTripwireTriggered,
            sdk.OutputGuardrailTripwireTriggered,
            sdk.ToolInputGuardrailTripwireTriggered,
            sdk.ToolOutputGuardrailTripwireTriggered,
        ),
    ):
        return "guardrail_tripped", message
    if isinstance(exc, (sdk.ModelBehaviorError, sdk.ModelRefusalError)):
        return "output_invalid", message
    if isinstance(exc, sdk.ToolTimeoutError):
        return "tool_error", message
    failure = provider_failure(exc, secrets=known, context=context)
    if failure is not None:
        return failure
    log_exception(
        logger,
        logging.ERROR,
        "%srun failed with an unexpected exception",
        f"{context}: " if context else "",
        exc=exc,
        secrets=known,
    )
    return "internal_error", "An unexpected error occurred; it has been logged."


def _upstream_text(exc: BaseException) -> str:
    """What the provider said: its error body's message when it has one, else the exception's
    text. For classification and the log only, never for users."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(exc)
