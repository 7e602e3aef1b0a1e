"""A real MCP server for tests, on loopback, in a background thread.

``LocalMCPServer`` serves a server built with the ``mcp`` package (``MCPServer`` in mcp 2.x,
``FastMCP`` in 1.x) with uvicorn on ``127.0.0.1`` and a free port, over streamable HTTP (at
``/mcp``) or the older HTTP+SSE transport (``/sse``). Its tools:

* ``add(a, b)``: the sum of two integers;
* ``shout(text)``: the text in upper case with an exclamation mark;
* ``secret_admin()``: a tool tests leave out of ``allowed_tools``.

Every JSON-RPC request the server receives is recorded by method (``server.methods``), so tests
can count ``tools/list`` calls (``server.count("tools/list")``); request headers are recorded in
``server.headers``.

Example::

    with LocalMCPServer() as server:
        url = server.url  # http://127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

__all__ = ["LocalMCPServer", "free_port"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_mcp_app() -> Any:
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import FastMCP as MCPServer

    server = MCPServer("agentdeck-test")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def shout(text: str) -> str:
        """Say the text loudly."""
        return text.upper() + "!"

    @server.tool()
    def secret_admin() -> str:
        """A tool the agent must not see."""
        return "you should not be here"

    return server


class _Recorder:
    """ASGI middleware recording each JSON-RPC message's method and the request headers."""

    def __init__(self, app: Any, owner: LocalMCPServer) -> None:
        self.app = app
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with self.owner.lock:
            self.owner.headers.append(headers)
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        for item in payload if isinstance(payload, list) else [payload]:
            if isinstance(item, dict) and "method" in item:
                with self.owner.lock:
                    self.owner.methods.append(item["method"])
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class LocalMCPServer:
    def __init__(self, transport: str = "streamable_http") -> None:
        if transport not in ("streamable_http", "sse"):
            raise ValueError(transport)
        self.transport = transport
        self.lock = threading.Lock()
        self.methods: list[str] = []
        self.headers: list[dict[str, str]] = []
        mcp_server = build_mcp_app()
        app = (
            mcp_server.streamable_http_app()
            if transport == "streamable_http"
            else mcp_server.sse_app()
        )
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            _Recorder(app, self),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name=f"LocalMCPServer:{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        path = "/mcp" if self.transport == "streamable_http" else "/sse"
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, method: str) -> int:
        with self.lock:
            return self.methods.count(method)

    def start(self) -> LocalMCPServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.02)
        return self

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> LocalMCPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
