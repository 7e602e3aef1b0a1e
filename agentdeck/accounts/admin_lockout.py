"""The page a locked-out admin sign-in gets (django-axes' ``AXES_LOCKOUT_CALLABLE``).

Axes' own answer is a bare line of text; this one is the admin's page, says for how long and
how staff lift the lock, and carries ``Retry-After``: 429 like every other limit here."""

from __future__ import annotations

import math
from typing import Any

from axes.helpers import get_cool_off
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from agentdeck.core.throttling import request_client_ip


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    cool_off = get_cool_off(request)
    seconds = math.ceil(cool_off.total_seconds()) if cool_off else 0
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in locked",
        "minutes": max(1, math.ceil(seconds / 60)),
        "address": request_client_ip(request) or "ADDRESS",
    }
    response = render(request, "accounts/admin_lockout.html", context, status=429)
    if seconds:
        # A failure during the lockout starts the cool-off again (axes' default), so a full
        # cool-off from now is when a sign-in can next succeed.
        response["Retry-After"] = str(seconds)
    return response
