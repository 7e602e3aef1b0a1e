"""Map whatever stopped a run to a stable error code (documented in the README)."""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)

# code -> what it means; the API and admin show the code, clients switch on it.
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


def classify_exception(exc: BaseException) -> tuple[str, str]:
    """(code, message) for an exception that ended a run."""
    import openai
    from agents import exceptions as sdk

    from agentdeck.agents.runtime.builder import ProviderUnavailable
    from agentdeck.core.crypto import SecretDecryptionError

    message = str(exc) or type(exc).__name__
    if isinstance(exc, RunTimedOut):
        return "run_timeout", message
    if isinstance(exc, ProviderUnavailable):
        return "provider_unavailable", exc.detail
    from agentdeck.core.exceptions import ApplicationError

    if isinstance(exc, ApplicationError):  # raised while building the graph: tool_error and kin
        return (exc.code if exc.code in RUN_ERROR_CODES else "tool_error"), exc.detail
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
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return "provider_auth_failed", _provider_message(exc)
    if isinstance(exc, openai.NotFoundError) or (
        isinstance(exc, openai.BadRequestError) and "model" in _provider_message(exc).lower()
    ):
        return "model_rejected", _provider_message(exc)
    if isinstance(
        exc, (openai.APITimeoutError, sdk.ModelTimeoutError, asyncio.TimeoutError, TimeoutError)
    ):
        return "provider_timeout", message
    if isinstance(exc, (openai.APIStatusError, openai.APIConnectionError, openai.APIError)):
        return "provider_error", _provider_message(exc)
    if type(exc).__module__.startswith("litellm"):
        return "provider_error", message
    logger.error("run failed with an unexpected exception", exc_info=exc)
    return "internal_error", "An unexpected error occurred; it has been logged."


def _provider_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(exc)
