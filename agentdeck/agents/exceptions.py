from __future__ import annotations

from agentdeck.core.exceptions import ApplicationError, Conflict, NotFound, PayloadTooLarge


class AgentSuspended(Conflict):
    code = "agent_suspended"
    title = "Agent suspended"


class ConversationBusy(Conflict):
    code = "conversation_busy"
    title = "Conversation busy"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    title = "Idempotency-Key reused with a different request"


class RunNotCancellable(Conflict):
    code = "run_not_cancellable"
    title = "Run not cancellable"


class InputTooLarge(PayloadTooLarge):
    code = "input_too_large"
    title = "Input too large"


class InvalidReference(ApplicationError):
    """A provider, tool, agent or conversation id that does not exist or is not the caller's."""

    status = 400
    code = "invalid_reference"
    title = "Invalid reference"


class ModelNotAvailable(ApplicationError):
    status = 400
    code = "model_not_available"
    title = "Model not offered by the provider"


class ProviderError(ApplicationError):
    status = 502
    code = "provider_error"
    title = "Provider error"


__all__ = [
    "AgentSuspended",
    "ConversationBusy",
    "IdempotencyConflict",
    "InputTooLarge",
    "InvalidReference",
    "ModelNotAvailable",
    "NotFound",
    "ProviderError",
    "RunNotCancellable",
]
