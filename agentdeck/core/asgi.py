"""Django's ASGI handler with the whole request on one hop to the request's thread.

Django's ``ASGIHandler`` builds its middleware chain in async mode and gives each middleware the
mode of the handler below it, with ``_get_response_async`` at the bottom. The chain here is sync
(Django's middleware and WhiteNoise), so a request crossed between daphne's event loop and its
thread again and again: Django ran each async-capable middleware's hooks through
``sync_to_async`` (15 crossings per API request), and even with the chain kept synchronous, the
bottom of it went back to the loop (``async_to_sync(_get_response_async)``) only to hop to a
thread once more for the view. Each crossing is a handoff between threads and a turn of the
loop: milliseconds per request on a busy 2-core machine (benchmarks/RESULTS.md).

This handler builds the chain in sync mode, view included, and does a request's sync work in one
``sync_to_async`` call: ``request_started`` (Django sent it from the loop, one hop for its sync
receivers), building the request, the chain and the view, and for a response that is not
streamed, closing it (``request_finished``: the database connection goes back to the pool)
before its bytes are sent, where Django hopped once more after sending. An async view still
works: the sync core calls it through ``async_to_sync``, which runs it on the loop while the
thread waits; a streaming response (SSE, files) is streamed by the handler on the loop
afterwards, holding no thread, and closed after it as Django does.

At most ``WEB_MAX_CONCURRENT_REQUESTS`` requests do their sync work at once; the others wait on
the loop, holding no thread. A burst of hundreds of requests then queues in order instead of
starting hundreds of threads that compete for the GIL and for the ``DATABASE_POOL_MAX_SIZE``
pooled connections (past the pool's timeout, a 500 each).

A response may be finished on the loop, after its thread and database connection are given
back: a view that sets ``response.finish_on_loop`` (an async callable taking the response and a
``run_sync`` that runs sync work in a slot, returning the response to send) has it awaited
before the response is sent. ``POST .../runs/`` with ``mode=wait`` waits for its run that way
(``agentdeck.agents.api.run_wait``); views see ``request.scope[FINISH_ON_LOOP]`` under this
handler, and must wait some other way without it (the test client).

And it reuses the request's thread. Django gives each request a ``ThreadSensitiveContext`` of
its own, so that requests run their sync code side by side, and asgiref makes that context a
new single-thread executor: a thread started for every request, and another one started at its
end to join the first. Here each request still has a single-thread executor to itself while it
runs (asgiref's ``ThreadSensitiveContext(executor=...)``, which leaves the executor to its
owner), taken from the idle ones the requests before it gave back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, cast

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.core.handlers.asgi import get_script_prefix
from django.http import FileResponse, HttpResponse, HttpResponseBase
from django.urls import set_script_prefix

from agentdeck.core.errors import STATUS_CODES, problem, problem_response
from agentdeck.core.middleware import API_PREFIX

if TYPE_CHECKING:
    from django.core.handlers.asgi import ASGIRequest

# Idle executors kept beyond this many (after a burst of concurrent requests) are shut down.
MAX_IDLE_THREADS = 16
# The scope key that tells a view it may set ``response.finish_on_loop``.
FINISH_ON_LOOP = "agentdeck.finish_on_loop"


class _Executors:
    """Single-thread executors for requests, one per request while it runs."""

    def __init__(self) -> None:
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_THREADS:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)


class ASGIHandler(DjangoASGIHandler):
    executors = _Executors()
    _slots: asyncio.Semaphore | None = None

    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            from django.conf import settings

            self._slots = asyncio.Semaphore(settings.WEB_MAX_CONCURRENT_REQUESTS)
        return self._slots

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # as Django's
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.executors.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            # Whatever the request left queued on it (a sync call whose await was cancelled
            # still runs to its end) runs before the next request's calls: one thread each.
            self.executors.give_back(executor)

    def create_request(
        self, scope: Mapping[str, Any], body_file: IO[bytes]
    ) -> tuple[ASGIRequest, None] | tuple[None, HttpResponseBase]:
        """Django's, with its own error answers made problem+json on API paths: it builds a bare
        400 with an empty body (a query string whose bytes are not UTF-8) or a plain-text 413
        before any middleware exists to rewrite them."""
        created = super().create_request(scope, body_file)
        response = created[1]
        if response is not None and scope.get("path", "").startswith(API_PREFIX):
            status = response.status_code
            detail = (
                "The query string is not UTF-8."  # the only UnicodeDecodeError Django's makes
                if status == 400
                else "The request body is too large."
            )
            body = problem(status=status, code=STATUS_CODES.get(status, "error"), detail=detail)
            return None, problem_response(None, body)
        return created

    def _respond(self, scope: dict[str, Any], body_file: IO[bytes]) -> HttpResponseBase:
        """On the request's thread: everything up to the bytes to send."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, refused = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)  # the chain, the view, logging an error
        else:
            response = cast(HttpResponseBase, refused)  # Django's answer to a bad request
        response._handler_class = self.__class__  # type: ignore[attr-defined]  # as Django's
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # as Django's run_get_response
        if not response.streaming:
            response.close()  # request_finished; the content stays to be sent
        return response

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django 5.2's ``ASGIHandler.handle`` with the sync work in one hop (``_respond``);
        the same handling of a client that disconnects while the view runs."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))

        scope[FINISH_ON_LOOP] = True

        async def run_sync(func: Any, *args: Any) -> Any:
            async with self.slots():
                return await sync_to_async(func, thread_sensitive=True)(*args)

        async def process_request() -> HttpResponseBase:
            response: HttpResponseBase = await run_sync(self._respond, scope, body_file)
            finish = getattr(response, "finish_on_loop", None)
            if finish is not None:
                finished: HttpResponse = await finish(response, run_sync)
                if finished.has_header("Content-Length"):  # set by the middleware for the old
                    finished["Content-Length"] = str(len(finished.content))
                response = finished
            with contextlib.suppress(asyncio.CancelledError):  # disconnected while it was sent
                await self.send_response(response, send)
            return response

        tasks: list[asyncio.Task[Any]] = [
            # First, as in Django: it must not raise what would keep process_request from
            # being cancelled.
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if response.streaming:
                await sync_to_async(response.close)()
        body_file.close()


def get_asgi_application() -> ASGIHandler:
    """``django.core.asgi.get_asgi_application`` with this handler."""
    import django

    django.setup(set_prefix=False)
    return ASGIHandler()
