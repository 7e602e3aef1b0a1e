from agentdeck.core.exceptions import ApplicationError, Conflict


class InsufficientCredits(ApplicationError):
    status = 402
    code = "insufficient_credits"
    title = "Insufficient credits"


class CreditsIdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    title = "Idempotency key reused with another amount"


class NothingToRefund(Conflict):
    code = "nothing_to_refund"
    title = "Nothing to refund"


class InvalidAmount(ApplicationError):
    status = 400
    code = "invalid_amount"
    title = "Invalid amount"
