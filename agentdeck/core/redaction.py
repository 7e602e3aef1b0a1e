"""Keep credentials out of text that came from somewhere else: one helper for the whole project.

Upstream services (model providers, embedding endpoints, MCP servers) answer errors with text of
their own, and some echo what they were sent, API key included (in a 401 body, say, which a
run's error would show everyone running a public agent). The rule:

* what users see (a run's error, its events, problem+json, a file's error) never carries
  upstream text: it gets a stable code and a message written here;
* the raw text goes to the server log, through :func:`redact` first.

:func:`redact` replaces the secrets it is given (a provider's API key and extra header values),
the secrets registered for the current run (:func:`scoped_secrets`, :func:`add_secrets`: spans
and tool outputs are redacted with them), and anything shaped like a credential (``Bearer ...``,
JWTs, ``sk-...``/``adk_...`` keys, ``"api_key": "..."`` pairs).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import traceback
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
# Shorter values ("1", "true", "json") would shred ordinary text and protect nothing.
MIN_SECRET_CHARS = 6

# Text shaped like a credential, whoever's it is. Each pattern's first group (when it has one)
# is kept: it names what was redacted ("Bearer ", '"api_key": "').
_CREDENTIAL_PATTERNS = [
    # An Authorization value; a digit or symbol is required so "Basic understanding" stays.
    re.compile(
        r"\b((?:[Bb]earer|BEARER|[Bb]asic|Token)\s+)"
        r"(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}"
    ),
    # A JWT: three base64url parts, the first a JSON header ("{" encodes as "ey").
    re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    # Key shapes of common providers: OpenAI/Anthropic (sk-, sk-ant-, sk-proj-), agentdeck's own
    # API keys, GitHub, Slack, AWS access key ids, Google API keys.
    re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_-]{12,}"),
    re.compile(r"\badk_[A-Za-z0-9]{8,}"),
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"),
    # "api_key": "...", api-key=..., 'password': '...', authorization: ...
    re.compile(
        r"""(?ix)
        ((?:["']?)\b
         (?:api[_-]?key|x-api-key|access[_-]?token|refresh[_-]?token|client[_-]?secret|secret|
            password|passwd|authorization|token)
         ["']?\s*[:=]\s*["']?)
        (?!\[REDACTED\]|(?:[Bb]earer|BEARER|[Bb]asic|Token)\s)[^"'\s,;&}\]]{4,}
        """
    ),
]

# No pattern above matches fewer characters ("token=abcd"): shorter text, most of what a span
# holds ("type", "model", "usage"), needs no scan (tests/core/test_redaction.py checks it).
SHORTEST_CREDENTIAL_CHARS = 10

# The secrets of what the current run talks to. A mutable set per scope: tasks the run starts
# copy the context, so they see (and add to) the same set.
_scope: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "agentdeck_redaction_scope", default=None
)


def _variants(secret: str) -> set[str]:
    # The forms a value takes when echoed inside JSON, a Python repr or a URL.
    return {
        secret,
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }


def _known(secrets: Iterable[str | None]) -> list[str]:
    values: set[str] = set()
    for secret in (*secrets, *(_scope.get() or ())):
        if isinstance(secret, str) and len(secret) >= MIN_SECRET_CHARS:
            values |= {v for v in _variants(secret) if len(v) >= MIN_SECRET_CHARS}
    # Longest first, so a secret containing another is replaced whole.
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with ``secrets``, the current scope's secrets and anything shaped like a
    credential replaced by ``[REDACTED]``."""
    return redact_patterns(redact_known(text, secrets)) if text else text


def redact_patterns(text: str) -> str:
    """Only what is shaped like a credential (``_CREDENTIAL_PATTERNS``)."""
    if len(text) < SHORTEST_CREDENTIAL_CHARS:
        return text
    for pattern in _CREDENTIAL_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.re.groups else "") + REDACTED,
            text,
        )
    return text


def redact_known(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Only the given and scoped secrets: for text that is the product (a tool's output), where a
    credential-shaped string may be what the user asked for and must stay."""
    if not text:
        return text
    for secret in _known(secrets):
        text = text.replace(secret, REDACTED)
    return text


def redact_data(value: Any, secrets: Iterable[str | None] = (), *, patterns: bool = True) -> Any:
    """A copy of a JSON-like value with every string (keys included) redacted; with
    ``patterns=False`` only the known secrets (see :func:`redact_known`)."""
    known = _known(secrets)
    one = redact_patterns if patterns else (lambda text: text)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            for secret in known:
                item = item.replace(secret, REDACTED)
            return one(item)
        if isinstance(item, Mapping):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value)


@contextlib.contextmanager
def scoped_secrets(secrets: Iterable[str | None] = ()) -> Iterator[set[str]]:
    """Register secrets for the code run inside (and the tasks it starts): :func:`redact`
    replaces them without being told. Nested scopes see the outer scope's secrets too."""
    current = {s for s in secrets if isinstance(s, str) and s}
    current |= _scope.get() or set()
    token = _scope.set(current)
    try:
        yield current
    finally:
        _scope.reset(token)


def add_secrets(secrets: Iterable[str | None]) -> None:
    """Add secrets to the current scope (a no-op outside one): for credentials read while a run
    goes on, such as a tool's secret headers."""
    current = _scope.get()
    if current is not None:
        current.update(s for s in secrets if isinstance(s, str) and s)


def exception_secrets(exc: BaseException | None) -> list[str]:
    """Credentials an exception's HTTP request carried (openai and httpx errors keep the
    request): the Authorization value and token, and every header that is not a plain
    protocol header (extra headers are where providers put keys of their own)."""
    found: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        request = getattr(exc, "request", None)
        headers = getattr(request, "headers", None)
        if headers is not None:
            with contextlib.suppress(Exception):  # a lazily built request may refuse
                for name, value in headers.items():
                    if name.lower() in _PLAIN_HEADERS or name.lower().startswith("x-stainless-"):
                        continue
                    found.append(value)
                    if " " in value:  # "Bearer sk-...": the token alone too
                        found.append(value.split(" ", 1)[1])
        exc = exc.__cause__ or exc.__context__
    return found


_PLAIN_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "content-type",
        "host",
        "user-agent",
        "idempotency-key",
        "openai-version",
        "x-request-id",
        "traceparent",
    }
)


def format_exception(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """The traceback of ``exc``, redacted: for a log line in place of ``exc_info``, whose
    formatter would print the exception's text as it is."""
    known = [*secrets, *exception_secrets(exc)]
    return redact("".join(traceback.format_exception(exc)).rstrip(), known)


def log_exception(
    logger: logging.Logger,
    level: int,
    message: str,
    *args: Any,
    exc: BaseException,
    secrets: Iterable[str | None] = (),
) -> None:
    """Log ``message`` with the redacted traceback of ``exc``."""
    if logger.isEnabledFor(level):
        logger.log(level, message + "\n%s", *args, format_exception(exc, secrets))
