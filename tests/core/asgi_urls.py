"""Views for tests/core/test_request_path.py: what agentdeck's ASGI handler must serve."""

from __future__ import annotations

import threading

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path

# Set by a test to hold the slow view until the client has gone.
release_slow = threading.Event()


def plain(request):
    return HttpResponse("ok")


def streamed(request):
    async def chunks():
        for chunk in (b"a", b"b", b"c"):
            yield chunk

    return StreamingHttpResponse(chunks())


def thread(request):
    return HttpResponse(str(threading.get_ident()))


def slow(request):
    release_slow.wait(10)
    return HttpResponse("late")


urlpatterns = [
    path("plain", plain),
    path("streamed", streamed),
    path("slow", slow),
    path("thread", thread),
]
