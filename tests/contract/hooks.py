"""Checks Schemathesis runs besides its own; the test loads this file through
``SCHEMATHESIS_HOOKS``."""

from __future__ import annotations

import schemathesis


@schemathesis.check
def undocumented_method_is_405(ctx, response, case) -> None:
    """An undocumented method on a documented path answers 405, for a caller who may use it.

    Schemathesis's own ``unsupported_method`` lets 401 and 403 pass, because many frameworks
    authenticate before they route a method. So does DRF, but the user here is authenticated
    and allowed, so a 403 means a view refused the method for the wrong reason (a plain Django
    view's CSRF check, say) and a client cannot tell "not allowed" from "no such method"."""
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    if getattr(data, "scenario", None) != "unspecified_http_method":
        return
    if "Authorization" not in response.request.headers or response.request.method == "OPTIONS":
        return
    if response.status_code in (401, 403):
        raise AssertionError(
            f"{response.request.method} is not an operation of this path, and the caller is "
            f"authenticated: expected 405 Method Not Allowed, got {response.status_code}"
        )
