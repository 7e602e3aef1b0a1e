"""The one redaction helper: known secrets in every form they are echoed in, the current run's
secrets, and anything shaped like a credential."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx

from agentdeck.core.redaction import (
    _CREDENTIAL_PATTERNS,
    REDACTED,
    SHORTEST_CREDENTIAL_CHARS,
    add_secrets,
    exception_secrets,
    log_exception,
    redact,
    redact_data,
    redact_known,
    scoped_secrets,
)


def test_a_known_secret_is_replaced_in_every_form_it_is_echoed_in():
    secret = 'pa$$ "word"/42'
    text = (
        f"raw {secret} json {json.dumps(secret)} url {httpx.URL('http://x/', params={'k': secret})}"
    )
    out = redact(text, [secret])
    assert "pa$$" not in out
    assert out.count(REDACTED) == 3


def test_credential_shaped_text_is_redacted_without_being_named():
    text = (
        "Authorization: Bearer abc.def-123456 key=sk-proj-AAAAAAAAAAAAAAAAAAAA "
        'adk_Plh9NRPngesU40cuJZrhbQ2sDylubuquWUbR3OQG {"api_key": "hunter2-xyz"} '
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    )
    out = redact(text)
    for leaked in ("abc.def-123456", "sk-proj-", "Plh9NRPn", "hunter2", "eyJzdWIi"):
        assert leaked not in out, out
    assert '"api_key": "[REDACTED]"' in out
    assert "Bearer [REDACTED]" in out


def test_ordinary_text_is_left_alone():
    text = 'Basic understanding of token usage: "input_tokens": 1234, sk-short'
    assert redact(text) == text


def test_redact_known_leaves_credential_shaped_text_that_is_the_product():
    # A tool's output may be a token the user asked for; only the tool's own secrets go.
    assert redact_known("Bearer abc.def-123456 and s3cret-value", ["s3cret-value"]) == (
        f"Bearer abc.def-123456 and {REDACTED}"
    )


def test_data_is_redacted_recursively_keys_included():
    data = {"error": {"message": "key k-123456 refused", "k-123456": ["k-123456"]}, "n": 1}
    assert redact_data(data, ["k-123456"]) == {
        "error": {"message": f"key {REDACTED} refused", REDACTED: [REDACTED]},
        "n": 1,
    }


def test_a_scope_reaches_the_tasks_it_starts_and_what_they_add_reaches_it():
    async def run():
        with scoped_secrets(["outer-secret-1"]) as scope:

            async def child():
                add_secrets(["inner-secret-2"])  # e.g. a tool's header read mid-run
                return redact("outer-secret-1")

            assert await asyncio.create_task(child()) == REDACTED
            assert "inner-secret-2" in scope
            return redact("inner-secret-2 outer-secret-1")

    assert asyncio.run(run()) == f"{REDACTED} {REDACTED}"
    assert redact("outer-secret-1") == "outer-secret-1"  # the scope ended


def test_an_http_errors_request_credentials_are_found():
    request = httpx.Request(
        "GET",
        "http://x/",
        headers={"Authorization": "Bearer tok-0123456789", "X-Tenant": "tenant-9", "Accept": "a"},
    )
    error = httpx.HTTPStatusError("boom", request=request, response=httpx.Response(401))
    found = exception_secrets(error)
    assert {"Bearer tok-0123456789", "tok-0123456789", "tenant-9"} <= set(found)
    assert "a" not in found


def test_log_exception_redacts_the_traceback(caplog):
    try:
        raise RuntimeError("upstream said: key=k-SECRET-99 is wrong")
    except RuntimeError as e:
        with caplog.at_level(logging.ERROR):
            log_exception(
                logging.getLogger("t"),
                logging.ERROR,
                "failed %s",
                "x",
                exc=e,
                secrets=["k-SECRET-99"],
            )
    logged = caplog.records[0].getMessage()
    assert "RuntimeError" in logged
    assert "Traceback" in logged
    assert "k-SECRET-99" not in logged


def test_no_credential_pattern_matches_text_shorter_than_the_scan_threshold():
    # redact_patterns skips text under SHORTEST_CREDENTIAL_CHARS: no pattern may match less.
    from re import _parser  # the minimum width of a pattern, as the regex engine computes it

    widths = [_parser.parse(p.pattern, p.flags).getwidth()[0] for p in _CREDENTIAL_PATTERNS]
    assert min(widths) == SHORTEST_CREDENTIAL_CHARS
    assert redact("token=abcd") == f"token={REDACTED}"
