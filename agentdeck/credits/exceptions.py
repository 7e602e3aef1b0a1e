from agentdeck.core.exceptions import ApplicationError, Conflict, IdempotencyConflict


class InsufficientCredits(ApplicationError):
    status = 402
    code = "insufficient_credits"
    title = "Insufficient credits"


class CreditsIdempotencyConflict(IdempotencyConflict):
    """A grant's idempotency_key reused with another amount."""


class NothingToRefund(Conflict):
    code = "nothing_to_refund"
    title = "Nothing to refund"


class InvalidAmount(ApplicationError):
    status = 400
    code = "invalid_amount"
    title = "Invalid amount"
