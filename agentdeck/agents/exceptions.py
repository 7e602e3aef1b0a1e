from __future__ import annotations

from agentdeck.core.exceptions import (
    ApplicationError,
    Conflict,
    IdempotencyConflict,
    NotFound,
    PayloadTooLarge,
)


class AgentSuspended(Conflict):
    code = "agent_suspended"
    title = "Agent suspended"


class ConversationBusy(Conflict):
    code = "conversation_busy"
    title = "Conversation busy"


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


class ToolError(InvalidReference):
    """A tool (or an agent used as one, an MCP server, a handoff target) the run cannot use:
    the run fails with ``tool_error``."""

    code = "tool_error"
    title = "Tool error"


class ModelNotAvailable(ApplicationError):
    status = 400
    code = "model_not_available"
    title = "Model not offered by the provider"


class ProviderError(ApplicationError):
    status = 502
    code = "provider_error"
    title = "Provider error"


class ProviderAuthFailed(ProviderError):
    code = "provider_auth_failed"
    title = "Provider refused the credentials"


class ProviderTimeout(ProviderError):
    code = "provider_timeout"
    title = "Provider timed out"


__all__ = [
    "AgentSuspended",
    "ConversationBusy",
    "IdempotencyConflict",
    "InputTooLarge",
    "InvalidReference",
    "ModelNotAvailable",
    "NotFound",
    "ProviderAuthFailed",
    "ProviderError",
    "ProviderTimeout",
    "RunNotCancellable",
    "ToolError",
]
