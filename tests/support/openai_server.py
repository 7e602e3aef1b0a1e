"""A local, in-process OpenAI-compatible HTTP server for tests.

Tests must never reach the internet. ``FakeOpenAI`` starts a real HTTP server on
``127.0.0.1`` (a free port) in a daemon thread, so the real ``openai`` client and the OpenAI
Agents SDK run their whole HTTP code path (connection pool, retries, timeouts, SSE parsing)
against it. Only the standard library is used.

Endpoints (all under ``/v1``):

* ``GET /v1/models`` and ``GET /v1/models/{id}``: the configured model ids.
* ``POST /v1/chat/completions``: Chat Completions, plain JSON or ``"stream": true`` SSE
  (``data: {chunk}`` lines ending with ``data: [DONE]``); with
  ``"stream_options": {"include_usage": true}`` a last chunk with ``choices: []`` carries the usage,
  as the real API does.
* ``POST /v1/responses``: Responses API, plain JSON or ``"stream": true`` SSE with typed events
  (``event: <type>`` / ``data: <json>``), each with a ``sequence_number``, ending with
  ``response.completed`` carrying the full response and its usage.

Scripting: every model request (chat completion or response) consumes the next queued *step*:

* ``add_text(text, usage=...)``: a plain assistant reply, streamed word by word.
* ``add_tool_call(name, arguments, call_id=None, usage=...)``: the model calls a function tool
  (``tool_calls`` in Chat Completions, a ``function_call`` output item in Responses).
* ``add_error(status=500, ...)``: that HTTP error, once, with an OpenAI-style error body.
* ``add_delay(seconds)``: wait, then answer the same request with the step queued after it
  (or the default reply), e.g. to provoke client timeouts.

With nothing queued the server answers the default text (``"ok"``). Usage defaults to 10 input
and 5 output tokens; pass ``usage=FakeUsage(...)`` or a dict with the same keys to change it.

Every request is recorded in ``server.requests`` (:class:`RecordedRequest`: method, path,
lower-cased headers, parsed JSON body). With ``require_api_key="sk-test"`` any other bearer key
gets a 401 ``invalid_api_key`` error.

``echo_credentials=True`` makes it a careless provider: every error it answers (the 401 above,
``add_error`` steps, ``embedding_failures``, ``models_failures``) quotes the request's
``Authorization`` header and every other non-protocol header value in its message, as some
servers and proxies do. Tests use it to check that no credential reaches what users see.

Example::

    import asyncio

    import openai
    import pytest

    from tests.support.openai_server import FakeOpenAI


    @pytest.fixture
    def fake_openai():
        with FakeOpenAI(require_api_key="sk-test") as server:
            yield server


    def test_reply(fake_openai):
        fake_openai.add_text("hello world", usage={"input_tokens": 7, "output_tokens": 2})

        async def call():
            client = openai.AsyncOpenAI(
                base_url=fake_openai.base_url, api_key="sk-test", max_retries=0
            )
            async with client:
                return await client.responses.create(model="fake-model", input="hi")

        response = asyncio.run(call())
        assert response.output_text == "hello world"
        assert fake_openai.requests[-1].headers["authorization"] == "Bearer sk-test"

With the Agents SDK, give the model an ``AsyncOpenAI`` client pointed at ``server.base_url``
(``OpenAIResponsesModel(model="fake-model", openai_client=client)``, or
``OpenAIChatCompletionsModel``) and call ``agents.set_tracing_disabled(True)`` so the trace
exporter does not try to reach api.openai.com. The Agents SDK only asks a non-OpenAI base URL
for streamed Chat Completions usage when ``ModelSettings(include_usage=True)`` is set.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import traceback
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeOpenAI", "FakeUsage", "RecordedRequest"]

DEFAULT_MODELS = ("fake-model", "fake-mini")


@dataclass(frozen=True)
class FakeUsage:
    """Token usage the server reports for one model request.

    ``output_tokens`` includes ``reasoning_tokens`` and ``input_tokens`` includes
    ``cached_tokens``, as with the real API; ``total_tokens`` is their sum.
    """

    input_tokens: int = 10
    output_tokens: int = 5
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def coerce(cls, value: FakeUsage | Mapping[str, int] | None) -> FakeUsage:
        if value is None:
            return cls()
        if isinstance(value, FakeUsage):
            return value
        return cls(**value)

    def as_responses(self) -> dict[str, Any]:
        """The ``usage`` object of the Responses API."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {
                "cached_tokens": self.cached_tokens,
                "cache_write_tokens": self.cache_write_tokens,
            },
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }

    def as_chat(self) -> dict[str, Any]:
        """The ``usage`` object of Chat Completions."""
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {
                "cached_tokens": self.cached_tokens,
                "cache_write_tokens": self.cache_write_tokens,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


@dataclass
class RecordedRequest:
    """One HTTP request the server received.

    ``headers`` has lower-cased names; ``body`` is the parsed JSON body (``None`` without one).
    ``disconnected`` turns true when the client went away before the whole answer was written
    (e.g. it timed out or closed a stream early).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, list[str]] = field(default_factory=dict)
    client_port: int = 0
    disconnected: bool = False

    @property
    def api_key(self) -> str | None:
        """The bearer token of the ``Authorization`` header, if any."""
        auth = self.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None


# Scripted steps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ToolCall:
    name: str
    arguments: str
    call_id: str | None = None


@dataclass(frozen=True)
class _Reply:
    text: str | None = None
    tool_calls: tuple[_ToolCall, ...] = ()
    usage: FakeUsage = field(default_factory=FakeUsage)
    chunk_delay: float = 0.0


@dataclass(frozen=True)
class _Error:
    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Delay:
    seconds: float


_Step = _Reply | _Error | _Delay

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


# Headers a careless server would not bother to quote (everything else, it does).
_PROTOCOL_HEADERS = frozenset(
    {"accept", "accept-encoding", "connection", "content-length", "content-type", "host",
     "user-agent"}
)  # fmt: skip


def _error_body(
    message: str, error_type: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _bag_of_words(text: str, size: int) -> list[float]:
    """A deterministic embedding: word counts hashed into ``size`` buckets (not normalised, as
    real endpoints' vectors need not be)."""
    vector = [0.0] * size
    for word in str(text).lower().split():
        vector[zlib.crc32(word.strip(".,;:!?").encode()) % size] += 1.0
    vector[0] += 0.01
    return vector


def _split_words(text: str) -> list[str]:
    """``"hello big world"`` -> ``["hello ", "big ", "world"]`` (joins back to the text)."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _split_in(text: str, parts: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


class _ClientGone(Exception):
    """The client closed the connection (or the server is closing) mid-answer."""


# The server -----------------------------------------------------------------------------------


class FakeOpenAI:
    """An OpenAI-compatible HTTP server on 127.0.0.1, started on construction.

    Use it as a context manager (``with FakeOpenAI() as server: ...``) or call :meth:`close`.
    """

    def __init__(
        self,
        *,
        models: Sequence[str] = DEFAULT_MODELS,
        require_api_key: str | None = None,
        default_text: str = "ok",
        echo_credentials: bool = False,
    ) -> None:
        self.models = list(models)
        self.require_api_key = require_api_key
        self.echo_credentials = echo_credentials
        self.default_text = default_text
        self.embedding_dimensions = 384
        """Size of ``/v1/embeddings`` vectors when the request names no ``dimensions``."""
        self.embedding_failures: deque[int] = deque()
        """HTTP statuses the next ``/v1/embeddings`` requests answer with, one each."""
        self.models_failures: deque[int] = deque()
        """HTTP statuses the next ``GET /v1/models`` requests answer with, one each."""
        self.latency = 0.0
        """Seconds every model request waits before its answer (besides ``add_delay`` steps):
        a model that takes its time, for many concurrent runs at once."""
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        """Tracebacks of exceptions the server itself raised (a bug in the fake, or a body it
        could not handle); each was answered with a 500."""

        self._steps: deque[_Step] = deque()
        self._lock = threading.Lock()
        self._ids = count(1)
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()

        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeOpenAI:{self.port}",
            daemon=True,
        )
        self._thread.start()

    # Lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to ``openai.OpenAI``/``AsyncOpenAI``."""
        return f"{self.url}/v1"

    def close(self) -> None:
        """Stop serving, interrupt pending delays and drop open connections. Idempotent."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FakeOpenAI {self.base_url} pending_steps={self.pending_steps}>"

    # Scripting --------------------------------------------------------------------------------

    def add_text(
        self,
        text: str,
        *,
        usage: FakeUsage | Mapping[str, int] | None = None,
        chunk_delay: float = 0.0,
    ) -> None:
        """Queue a plain assistant reply. Streamed word by word, ``chunk_delay`` seconds apart."""
        self._push(_Reply(text=text, usage=FakeUsage.coerce(usage), chunk_delay=chunk_delay))

    def add_tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        call_id: str | None = None,
        *,
        usage: FakeUsage | Mapping[str, int] | None = None,
    ) -> str:
        """Queue a function tool call; returns its call id (generated unless given)."""
        args = arguments if isinstance(arguments, str) else json.dumps(dict(arguments or {}))
        call_id = call_id or f"call_fake_{self._next_id()}"
        call = _ToolCall(name=name, arguments=args, call_id=call_id)
        self._push(_Reply(tool_calls=(call,), usage=FakeUsage.coerce(usage)))
        return call_id

    def add_error(
        self,
        status: int = 500,
        body: Any = None,
        *,
        message: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue one HTTP error answer.

        Without ``body`` it is ``{"error": {"message", "type", "param", "code"}}`` with a type
        and code that fit the status (``message``/``code`` override them); a dict ``body`` is sent
        as JSON, a str/bytes one as is. ``headers`` are added, e.g. ``{"retry-after-ms": "10"}``
        to make the client retry sooner, or ``{"x-should-retry": "false"}``.
        """
        if body is None:
            error_type, default_code = _ERROR_TYPES.get(
                status, ("server_error" if status >= 500 else "invalid_request_error", None)
            )
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = ""
            body = _error_body(
                message or f"Fake error {status} {phrase}".strip(),
                error_type,
                code if code is not None else default_code,
            )
        self._push(_Error(status=status, body=body, headers=tuple((headers or {}).items())))

    def add_delay(self, seconds: float) -> None:
        """Make the next model request wait ``seconds`` before it is answered with the step
        queued after this one (the timed-out request consumes that step too)."""
        self._push(_Delay(seconds=seconds))

    @property
    def pending_steps(self) -> int:
        """How many queued steps were not consumed yet."""
        with self._lock:
            return len(self._steps)

    def reset(self) -> None:
        """Forget queued steps, recorded requests and errors."""
        with self._lock:
            self._steps.clear()
            self.requests.clear()
            self.errors.clear()

    def model_requests(self) -> list[RecordedRequest]:
        """The recorded chat completion and response requests, in order."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "POST" and r.path in ("/v1/chat/completions", "/v1/responses")
            ]

    # Internals --------------------------------------------------------------------------------

    def _push(self, step: _Step) -> None:
        with self._lock:
            self._steps.append(step)

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_reply(self) -> _Reply | _Error:
        """Consume the steps for one model request: any delays and the step after them, taken
        at once so a request arriving during the delay gets the step after that."""
        delay = self.latency
        with self._lock:
            step = self._steps.popleft() if self._steps else None
            while isinstance(step, _Delay):
                delay += step.seconds
                step = self._steps.popleft() if self._steps else None
        if delay and self._closing.wait(delay):
            raise _ClientGone("server closing")
        return step if step is not None else _Reply(text=self.default_text)

    # Chat Completions payloads -----------------------------------------------------------------

    def _chat_completion(self, body: Mapping[str, Any], reply: _Reply) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-fake-{self._next_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.models[0],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": reply.usage.as_chat(),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def _chat_chunks(self, body: Mapping[str, Any], reply: _Reply) -> Iterator[dict[str, Any]]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-fake-{self._next_id()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model") or self.models[0],
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            extra = {"usage": None} if include_usage else {}
            return {**base, "choices": [choice], **extra}

        if reply.tool_calls:
            yield chunk({"role": "assistant", "content": None, "refusal": None})
            for index, call in enumerate(reply.tool_calls):
                yield chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call.call_id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                )
                for piece in _split_in(call.arguments, 3):
                    yield chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                    )
            yield chunk({}, "tool_calls")
        else:
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            for word in _split_words(reply.text or ""):
                yield chunk({"content": word})
            yield chunk({}, "stop")
        if include_usage:
            yield {**base, "choices": [], "usage": reply.usage.as_chat()}

    # Responses payloads -------------------------------------------------------------------------

    def _response(
        self,
        body: Mapping[str, Any],
        response_id: str,
        created_at: int,
        *,
        status: str,
        output: list[dict[str, Any]],
        usage: FakeUsage | None,
    ) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "response",
            "created_at": created_at,
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "metadata": body.get("metadata") or {},
            "model": body.get("model") or self.models[0],
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice") or "auto",
            "tools": body.get("tools") or [],
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation") or "disabled",
            "usage": usage.as_responses() if usage is not None else None,
            "user": body.get("user"),
        }

    def _response_items(self, reply: _Reply) -> list[dict[str, Any]]:
        """The completed output items of a reply."""
        if reply.tool_calls:
            return [
                {
                    "id": f"fc_fake_{self._next_id()}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                }
                for call in reply.tool_calls
            ]
        return [
            {
                "id": f"msg_fake_{self._next_id()}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": reply.text or "",
                        "annotations": [],
                        "logprobs": [],
                    }
                ],
            }
        ]

    def _response_events(
        self, body: Mapping[str, Any], reply: _Reply
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        response_id = f"resp_fake_{self._next_id()}"
        created_at = int(time.time())
        items = self._response_items(reply)
        sequence = count(0)

        def event(type_: str, **payload: Any) -> tuple[str, dict[str, Any]]:
            return type_, {"type": type_, "sequence_number": next(sequence), **payload}

        in_progress = self._response(
            body, response_id, created_at, status="in_progress", output=[], usage=None
        )
        yield event("response.created", response=in_progress)
        yield event("response.in_progress", response=in_progress)
        for index, item in enumerate(items):
            if item["type"] == "function_call":
                yield event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                for piece in _split_in(item["arguments"], 3):
                    yield event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=piece,
                    )
                yield event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            else:
                text = item["content"][0]["text"]
                yield event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                where = {"item_id": item["id"], "output_index": index, "content_index": 0}
                empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                yield event("response.content_part.added", **where, part=empty_part)
                for word in _split_words(text):
                    yield event("response.output_text.delta", **where, delta=word, logprobs=[])
                yield event("response.output_text.done", **where, text=text, logprobs=[])
                yield event("response.content_part.done", **where, part=item["content"][0])
            yield event("response.output_item.done", output_index=index, item=item)
        completed = self._response(
            body, response_id, created_at, status="completed", output=items, usage=reply.usage
        )
        yield event("response.completed", response=completed)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default joins every handler thread on server_close(), which would wait for idle
    # keep-alive connections; close() shuts those sockets down instead.
    block_on_close = False
    allow_reuse_address = True
    # Many runs connect at once (the run worker's tests); the default backlog of 5 drops SYNs.
    request_queue_size = 1024
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 30
    # TCP_NODELAY, as real servers set it: an answer is written in several small writes (the
    # status line and headers, then each SSE event), and with Nagle's algorithm each write after
    # the first waits for the client's delayed ACK, ~40 ms per model call on a reused connection.
    disable_nagle_algorithm = True
    server: _Server

    # Connection tracking, so FakeOpenAI.close() can drop keep-alive connections.

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # Dispatch ----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        fake = self.server.fake
        self._headers_sent = False
        self._request_id = f"req_fake_{fake._next_id()}"
        split = urlsplit(self.path)
        try:
            raw = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        recorded = RecordedRequest(
            method=self.command,
            path=split.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=None,
            query=parse_qs(split.query),
            client_port=self.client_address[1],
        )
        try:
            if raw:
                try:
                    recorded.body = json.loads(raw)
                except ValueError:
                    recorded.body = raw.decode("utf-8", "replace")
                    fake._record(recorded)
                    self._send_json(
                        400,
                        _error_body(
                            "We could not parse the JSON body of your request.",
                            "invalid_request_error",
                            None,
                        ),
                    )
                    return
            fake._record(recorded)
            self._route(split.path, recorded)
        except _ClientGone:
            recorded.disconnected = True
            self.close_connection = True
        except Exception:
            fake.errors.append(traceback.format_exc())
            if self._headers_sent:
                self.close_connection = True
                return
            try:
                self._send_json(
                    500, _error_body("FakeOpenAI failed, see server.errors", "server_error", None)
                )
            except _ClientGone:
                recorded.disconnected = True
                self.close_connection = True

    def _route(self, path: str, recorded: RecordedRequest) -> None:
        fake = self.server.fake
        if fake.require_api_key is not None and recorded.api_key != fake.require_api_key:
            key = recorded.api_key
            message = (
                f"Incorrect API key provided: {key[:3]}***{key[-2:]}."
                if key
                else "You didn't provide an API key."
            )
            body = _error_body(message, "invalid_request_error", "invalid_api_key")
            self._send_json(401, self._echoed(body, recorded))
            return

        body = recorded.body if isinstance(recorded.body, dict) else {}
        if self.command == "GET" and path == "/v1/models" and fake.models_failures:
            status = fake.models_failures.popleft()
            body = _error_body("listing failed", "server_error", None)
            self._send_json(status, self._echoed(body, recorded))
        elif self.command == "GET" and path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [_model(m) for m in fake.models]})
        elif self.command == "GET" and path.startswith("/v1/models/"):
            model_id = path.removeprefix("/v1/models/")
            if model_id in fake.models:
                self._send_json(200, _model(model_id))
            else:
                message = f"The model '{model_id}' does not exist"
                self._send_json(
                    404, _error_body(message, "invalid_request_error", "model_not_found", "model")
                )
        elif self.command == "POST" and path == "/v1/chat/completions":
            reply = fake._next_reply()
            if isinstance(reply, _Error):
                self._send_error_step(reply, recorded)
            elif body.get("stream"):
                chunks = fake._chat_chunks(body, reply)
                lines = (f"data: {json.dumps(chunk)}\n\n" for chunk in chunks)
                self._send_sse(_chain(lines, ["data: [DONE]\n\n"]), reply.chunk_delay)
            else:
                self._send_json(200, fake._chat_completion(body, reply))
        elif self.command == "POST" and path == "/v1/responses":
            reply = fake._next_reply()
            if isinstance(reply, _Error):
                self._send_error_step(reply, recorded)
            elif body.get("stream"):
                events = fake._response_events(body, reply)
                lines = (f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data in events)
                self._send_sse(lines, reply.chunk_delay)
            else:
                *_, (_, completed) = fake._response_events(body, reply)
                self._send_json(200, completed["response"])
        elif self.command == "POST" and path == "/v1/embeddings":
            if fake.embedding_failures:
                status = fake.embedding_failures.popleft()
                body = _error_body("embedding failed", "server_error", None)
                self._send_json(status, self._echoed(body, recorded))
                return
            inputs = body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
            size = int(body.get("dimensions") or fake.embedding_dimensions)
            data = [
                {"object": "embedding", "index": i, "embedding": _bag_of_words(text, size)}
                for i, text in enumerate(inputs)
            ]
            tokens = sum(len(str(t).split()) for t in inputs)
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )
        else:
            message = f"Invalid URL ({self.command} {path})"
            self._send_json(404, _error_body(message, "invalid_request_error", None))

    # Reading -----------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # Writing -----------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.server.fake._closing.is_set():
            raise _ClientGone("server closing")
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as exc:  # BrokenPipeError, ConnectionResetError, timeouts
            raise _ClientGone(str(exc)) from exc

    def _start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("x-request-id", self._request_id)
        self.send_header("openai-processing-ms", "1")
        for name, value in headers:
            self.send_header(name, value)
        self._headers_sent = True
        try:
            self.end_headers()
        except OSError as exc:
            raise _ClientGone(str(exc)) from exc

    def _send_json(
        self, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        if isinstance(payload, bytes | bytearray):
            data = bytes(payload)
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        self._start(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                *headers,
            ],
        )
        self._write(data)

    def _send_error_step(self, step: _Error, recorded: RecordedRequest) -> None:
        self._send_json(step.status, self._echoed(step.body, recorded), step.headers)

    def _echoed(self, body: Any, recorded: RecordedRequest) -> Any:
        """``body`` quoting the request's credentials when the server echoes them."""
        if not self.server.fake.echo_credentials:
            return body
        quoted = "; ".join(
            f"{name}: {value}"
            for name, value in recorded.headers.items()
            if name not in _PROTOCOL_HEADERS and not name.startswith("x-stainless")
        )
        echo = f" (request headers: {quoted})"
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            return {**body, "error": {**error, "message": f"{error.get('message', '')}{echo}"}}
        if isinstance(body, dict):
            return {**body, "detail": echo}
        text = body.decode() if isinstance(body, bytes | bytearray) else str(body)
        return text + echo

    def _send_sse(self, events: Iterable[str], chunk_delay: float) -> None:
        """Stream events with chunked transfer encoding, so the connection can be reused once
        the terminating chunk is read (HTTP/1.0 clients get a close-delimited body instead)."""
        chunked = self.request_version == "HTTP/1.1"
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
        ]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            headers.append(("Connection", "close"))
            self.close_connection = True
        self._start(200, headers)
        for index, event in enumerate(events):
            if index and chunk_delay and self.server.fake._closing.wait(chunk_delay):
                raise _ClientGone("server closing")
            data = event.encode()
            self._write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self._write(b"0\r\n\r\n")


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "fake"}


def _chain(*iterables: Iterable[str]) -> Iterator[str]:
    for iterable in iterables:
        yield from iterable
