"""``fetch``: one request under the SSRF policy, with redirects followed and checked here (a
cross-origin hop drops the caller's secret headers), one deadline for the whole call, and a body
cut at ``max_bytes`` (gzip/deflate inflated with a bounded output, so a "bomb" cannot grow past
the cap)."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import re
import time
import zlib
from collections.abc import AsyncGenerator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from agentdeck.core.outbound.policy import (
    Allowlist,
    OutboundError,
    OutboundRefused,
    check_target,
    current_allowlist,
    url_host,
)
from agentdeck.core.outbound.transport import GuardedTransport

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Request headers kept when a redirect leaves the origin; everything else the caller set (API
# keys, Authorization, cookies, custom secret headers) stays with the original host.
CROSS_ORIGIN_SAFE_HEADERS = frozenset({"accept", "accept-language", "user-agent"})
_BODY_HEADERS = ("content-type", "content-length", "content-encoding", "transfer-encoding")


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes  # decoded (gzip/deflate inflated), at most max_bytes
    truncated: bool
    total_bytes: int | None  # the full body size when known (read it all, or Content-Length)
    final_url: str  # after redirects, without userinfo
    elapsed_ms: int

    @property
    def text(self) -> str:
        """The body as text: the Content-Type charset when there is a known one, else UTF-8;
        undecodable bytes (including a character cut by truncation) become U+FFFD."""
        match = re.search(r"charset=[\"']?([\w.:-]+)", self.headers.get("content-type", ""), re.I)
        encoding = "utf-8"
        if match:
            with contextlib.suppress(LookupError):
                encoding = codecs.lookup(match.group(1)).name
        return self.body.decode(encoding, errors="replace")


class _Inflater:
    """gzip/deflate with bounded output: ``feed(data, limit)`` never returns more than
    ``limit`` bytes however well the input compresses."""

    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        self._first = True
        # MAX_WBITS | 32 reads a zlib or gzip header; "deflate" may also be raw (headerless).
        self._decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)

    def feed(self, data: bytes, limit: int) -> bytes:
        first, self._first = self._first, False
        try:
            return self._decompressor.decompress(data, limit)
        except zlib.error:
            if not (self._deflate and first):
                raise
            self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._decompressor.decompress(data, limit)


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    encodings = [
        e.strip()
        for e in response.headers.get("content-encoding", "").lower().split(",")
        if e.strip() and e.strip() != "identity"
    ]
    inflater = None
    if len(encodings) == 1 and encodings[0] in {"gzip", "x-gzip", "deflate"}:
        inflater = _Inflater(encodings[0])
    parts: list[bytes] = []
    size = 0

    async def chunks() -> AsyncGenerator[bytes, None]:
        if inflater is None:  # identity, or an encoding httpx decodes itself
            async for chunk in response.aiter_bytes():
                yield chunk
            return
        async for raw in response.aiter_raw():
            try:
                # One byte more than fits tells a cut body from one that ends exactly at the cap.
                yield inflater.feed(raw, max_bytes - size + 1)
            except zlib.error as e:
                raise OutboundError(f"could not decode the {encodings[0]} response body") from e

    async with contextlib.aclosing(chunks()) as stream:
        async for chunk in stream:
            room = max_bytes - size
            if len(chunk) > room:
                parts.append(chunk[:room])
                return b"".join(parts), True
            parts.append(chunk)
            size += len(chunk)
    return b"".join(parts), False


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _same_origin(old: httpx.URL, new: httpx.URL) -> bool:
    if _origin(old) == _origin(new):
        return True
    # http -> https on the default ports of the same host, as httpx itself treats it.
    return (
        old.host == new.host
        and (old.scheme, new.scheme) == ("http", "https")
        and old.port in (None, 80)
        and new.port in (None, 443)
    )


def _without_userinfo(url: httpx.URL) -> str:
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)


def _redirect_method(status: int, method: str) -> str:
    """302/303 become GET (HEAD stays), 301 turns POST into GET, 307/308 keep the method."""
    if (status in (302, 303) and method != "HEAD") or (status == 301 and method == "POST"):
        return "GET"
    return method


def _redirect_headers(
    headers: httpx.Headers, old: httpx.URL, new: httpx.URL, *, keep_body: bool
) -> httpx.Headers:
    headers = httpx.Headers(headers)
    for name in list(headers.keys()):
        if (not _same_origin(old, new) and name not in CROSS_ORIGIN_SAFE_HEADERS) or (
            not keep_body and name in _BODY_HEADERS
        ):
            del headers[name]
    return headers


async def _fetch(
    method: str,
    url: httpx.URL,
    *,
    headers: Mapping[str, str] | None,
    json: Any,
    content: bytes | str | None,
    params: Any,
    timeout: float,
    max_bytes: int,
    max_redirects: int,
    allowlist: Allowlist,
    started: float,
) -> OutboundResponse:
    caller_headers = httpx.Headers(headers or {})
    async with httpx.AsyncClient(
        transport=GuardedTransport(allowlist),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        # Only the encodings _read_capped inflates with a bound.
        headers={"Accept-Encoding": "gzip, deflate"},
    ) as client:
        try:
            request = client.build_request(
                method, url, params=params, headers=caller_headers, json=json, content=content
            )
        except (TypeError, ValueError, UnicodeError) as e:
            raise OutboundRefused(f"refused: the request cannot be built ({e})") from e
        redirects = 0
        while True:
            host = url_host(request.url)
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as e:
                raise _transport_error(e, host, timeout) from e
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location is not None:
                    if redirects >= max_redirects:
                        raise OutboundRefused(
                            f"refused: too many redirects (more than {max_redirects})"
                        )
                    redirects += 1
                    try:
                        target = check_target(request.url.join(location), allowlist)
                    except httpx.InvalidURL as e:
                        raise OutboundRefused(
                            f"refused: {host} redirected to an invalid URL ({e})"
                        ) from e
                    next_method = _redirect_method(response.status_code, request.method)
                    keep_body = next_method == request.method
                    if not keep_body:
                        json = content = None  # and not brought back by a later 307
                    caller_headers = _redirect_headers(
                        caller_headers, request.url, target, keep_body=keep_body
                    )
                    request = client.build_request(
                        next_method, target, headers=caller_headers, json=json, content=content
                    )
                    continue
                try:
                    body, truncated = await _read_capped(response, max_bytes)
                except httpx.HTTPError as e:
                    raise _transport_error(e, host, timeout) from e
            finally:
                await response.aclose()
            total: int | None = len(body)
            if truncated:
                length = response.headers.get("content-length", "")
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                total = int(length) if length.isdigit() and not encoded else None
            return OutboundResponse(
                status=response.status_code,
                headers=dict(response.headers.items()),
                body=body,
                truncated=truncated,
                total_bytes=total,
                final_url=_without_userinfo(request.url),
                elapsed_ms=int((time.monotonic() - started) * 1000),
            )


def _transport_error(error: httpx.HTTPError, host: str, timeout: float) -> OutboundError:
    if isinstance(error, httpx.TimeoutException):
        return OutboundError(f"request to {host} timed out (limit {timeout:g}s)")
    if isinstance(error, httpx.ConnectError):
        return OutboundError(f"could not connect to {host}: {error}")
    return OutboundError(f"request to {host} failed: {error}")


async def fetch(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    params: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
) -> OutboundResponse:
    """Make one HTTP request under the SSRF policy and return its (possibly truncated) response.

    ``timeout`` (seconds) bounds each connect/read/write and the whole call, redirects and DNS
    included. Redirects (301/302/303/307/308) are followed up to ``max_redirects``, each hop
    checked afresh; 302/303 (and 301 after POST) become GET without the body, as browsers do.
    Any HTTP status is a response, not an error. Raises :class:`OutboundRefused` for a policy
    refusal and :class:`OutboundError` (a subclass) when the request fails.
    """
    if json is not None and content is not None:
        raise ValueError("pass json or content, not both")
    if max_bytes < 0 or max_redirects < 0 or timeout <= 0:
        raise ValueError("max_bytes and max_redirects must be >= 0 and timeout > 0")
    started = time.monotonic()
    allowlist = current_allowlist()
    target = check_target(url, allowlist)
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(
                method.upper(),
                target,
                headers=headers,
                json=json,
                content=content,
                params=params,
                timeout=timeout,
                max_bytes=max_bytes,
                max_redirects=max_redirects,
                allowlist=allowlist,
                started=started,
            )
    except TimeoutError as e:  # the overall deadline
        host = url_host(target)
        raise OutboundError(f"request to {host} timed out (limit {timeout:g}s)") from e


def fetch_sync(method: str, url: str, **kwargs: Any) -> OutboundResponse:
    """:func:`fetch` for synchronous code. Inside a running event loop it runs in a worker thread
    (and blocks this one), so async code should await :func:`fetch` instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fetch(method, url, **kwargs))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbound") as pool:
        return pool.submit(asyncio.run, fetch(method, url, **kwargs)).result()
