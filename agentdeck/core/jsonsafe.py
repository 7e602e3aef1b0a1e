"""PostgreSQL's jsonb cannot store the NUL character (``\\u0000``): the INSERT fails. Text from
models, tools and files can carry one (a binary file read as text), so everything written to a
JSON column from outside passes through :func:`pg_json_safe` first."""

from __future__ import annotations

from typing import Any


def pg_json_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {pg_json_safe(k): pg_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [pg_json_safe(v) for v in value]
    return value
