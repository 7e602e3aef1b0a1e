"""An OpenAI-compatible model for benchmarks: Chat Completions over HTTP/1.1, many calls at once.

``concurrency.py`` runs it in a process of its own (so its CPU is counted apart from the raw SDK's
and agentdeck's) and points both sides at it::

    .venv/bin/python benchmarks/model_stub.py --port 0 --latency 1.0
    # prints "listening on 127.0.0.1:PORT", then serves until SIGINT/SIGTERM

It is the two-turn tool agent's model, decided from each request alone (stateless, so any number
of conversations can run at once), with the convention of agentdeck's offline ``mock`` model:

1. the last message is the user's, and it reads ``NAME {json}`` where NAME is one of the
   request's ``tools``: the answer is a call of that function with those arguments
   (``calculator {"expression": "2+2"}`` -> ``calculator(expression="2+2")``);
2. the last message is a tool result: the answer is the text ``NAME returned: OUTPUT``
   (``calculator returned: 4``), NAME found through the assistant's call with that id;
3. otherwise ``Echo: TEXT``.

Each ``POST /v1/chat/completions`` waits the configured latency (``--latency`` seconds, or
``POST /_stub/config {"latency": S}``), then answers at once: plain JSON, or with ``"stream": true``
the SSE chunks the real API sends (a role chunk, the tool call or the words, the finish reason,
and with ``stream_options.include_usage`` a last chunk with ``choices: []`` and the usage), ending
with ``data: [DONE]``. ``GET /v1/models`` lists ``stub-model``; ``GET /_stub/stats`` reports the
calls served and the most in progress at once (``POST /_stub/reset`` zeroes them); ``GET
/healthz`` answers ``ok``.

Why not ``tests/support/openai_server.py``: it runs a thread per connection, and 1,000 streams
at once would cost 1,000 threads. Why not uvicorn + starlette (both installed): this process
shares the machine's 2 cores with what is measured, and a streamed completion through uvicorn
(h11) and starlette cost twice the CPU (0.53 ms against 0.26 ms here) of the few lines of
HTTP/1.1 below (keep-alive, Content-Length bodies: all the ``openai`` client needs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import sys
import time
from dataclasses import dataclass
from itertools import count
from typing import Any

MODEL = "stub-model"
USAGE = {
    "prompt_tokens": 10,
    "completion_tokens": 5,
    "total_tokens": 15,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required"}


# --- what the model answers ----------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """A message's text: a string, or the ``text`` of its content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def reply_for(body: dict[str, Any]) -> dict[str, Any]:
    """``{"tool_call": {"id", "name", "arguments"}}`` or ``{"text": ...}`` for a request body."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        names = {
            call.get("id"): (call.get("function") or {}).get("name", "tool")
            for message in messages
            if message.get("role") == "assistant"
            for call in message.get("tool_calls") or []
        }
        name = names.get(last.get("tool_call_id"), "tool")
        return {"text": f"{name} returned: {_text_of(last.get('content'))}"}
    text = _text_of(last.get("content")).strip()
    tools = {(t.get("function") or {}).get("name") for t in body.get("tools") or []}
    name, _, rest = text.partition(" ")
    if name in tools and rest.strip().startswith("{"):
        with contextlib.suppress(ValueError):
            arguments = json.loads(rest)
            call_id = f"call_{len(messages)}_{name}"
            return {"tool_call": {"id": call_id, "name": name, "arguments": json.dumps(arguments)}}
    return {"text": f"Echo: {text}"}


def completion(body: dict[str, Any], reply: dict[str, Any], number: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("text")}
    if "tool_call" in reply:
        call = reply["tool_call"]
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
        ]
    return {
        "id": f"chatcmpl-stub-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if "tool_call" in reply else "stop",
            }
        ],
        "usage": USAGE,
    }


def stream_chunks(body: dict[str, Any], reply: dict[str, Any], number: int) -> list[dict]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": f"chatcmpl-stub-{number}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or MODEL,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice], **({"usage": None} if include_usage else {})}

    if "tool_call" in reply:
        call = reply["tool_call"]
        chunks = [
            chunk({"role": "assistant", "content": None}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["name"], "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": call["arguments"]}}]}),
            chunk({}, "tool_calls"),
        ]
    else:
        words = reply["text"].split(" ")
        pieces = [w + " " for w in words[:-1]] + words[-1:]
        chunks = [chunk({"role": "assistant", "content": ""})]
        chunks += [chunk({"content": piece}) for piece in pieces]
        chunks.append(chunk({}, "stop"))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": USAGE})
    return chunks


# --- the server ----------------------------------------------------------------------------------


@dataclass
class Stats:
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    max_connections: int = 0


class Stub:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.stats = Stats()
        self._numbers = count(1)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats = self.stats
        stats.connections += 1
        stats.max_connections = max(stats.max_connections, stats.connections)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            stats.connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read and answer one request; False when the connection is to be closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed a kept-alive connection
        if len(head) > MAX_HEADER_BYTES:
            return False
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, version = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        keep_alive = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await self._send(writer, 411, b'{"error": "send a Content-Length"}', keep_alive=False)
            return False
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            return False
        raw = await reader.readexactly(length) if length else b""
        status, payload, content_type = await self._route(method, path.split("?")[0], raw)
        await self._send(writer, status, payload, content_type, keep_alive=keep_alive)
        return keep_alive

    async def _route(self, method: str, path: str, raw: bytes) -> tuple[int, bytes, str]:
        if method == "POST" and path.endswith("/chat/completions"):
            return await self._chat(raw)
        if method == "GET" and path.endswith("/models"):
            data = [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]
            return 200, json.dumps({"object": "list", "data": data}).encode(), "application/json"
        if path == "/healthz":
            return 200, b"ok", "text/plain"
        if path == "/_stub/stats":
            return 200, json.dumps(self.stats.__dict__).encode(), "application/json"
        if method == "POST" and path == "/_stub/reset":
            connections = self.stats.connections
            self.stats = Stats(connections=connections, max_connections=connections)
            return 200, b"{}", "application/json"
        if method == "POST" and path == "/_stub/config":
            self.latency = float(json.loads(raw or b"{}").get("latency", self.latency))
            return 200, json.dumps({"latency": self.latency}).encode(), "application/json"
        return 404, b'{"error": {"message": "not found"}}', "application/json"

    async def _chat(self, raw: bytes) -> tuple[int, bytes, str]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, b'{"error": {"message": "the body is not JSON"}}', "application/json"
        stats = self.stats
        stats.calls += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            number = next(self._numbers)
            reply = reply_for(body)
            if not body.get("stream"):
                payload = json.dumps(completion(body, reply, number)).encode()
                return 200, payload, "application/json"
            events = [f"data: {json.dumps(c)}\n\n" for c in stream_chunks(body, reply, number)]
            events.append("data: [DONE]\n\n")
            return 200, "".join(events).encode(), "text/event-stream"
        finally:
            stats.in_flight -= 1

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter,
        status: int,
        payload: bytes,
        content_type: str = "application/json",
        *,
        keep_alive: bool,
    ) -> None:
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        writer.write(head.encode() + payload)
        await writer.drain()


def raise_open_files_limit() -> int:
    """Lift the soft limit on open files to the hard one: 1,000 connections need more than the
    common default of 1,024 descriptors. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


async def serve(host: str, port: int, latency: float) -> None:
    stub = Stub(latency)
    server = await asyncio.start_server(stub.handle, host, port, backlog=4096)
    bound = server.sockets[0].getsockname()
    print(f"listening on {bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per model call")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    asyncio.run(serve(args.host, args.port, args.latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
