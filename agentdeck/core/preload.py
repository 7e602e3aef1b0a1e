"""Loading what is slow to load once, when a process starts, instead of in the first request or
task that needs it (a first search would take ~9 s, a new file sit at 10 %, a first run wait
seconds to start).

What is slow, measured on the idle 2-core development machine (three times that when busy):

* the agents runtime (the Agents SDK, openai, the runtime modules, the views and services): ~1.5 s
  of imports, needed by every run and by the web process (provider model lists, for one);
* the local embedding model: importing torch and sentence-transformers ~6 s, loading
  all-MiniLM-L6-v2 ~0.6 s and its first call ~0.2 s; needed by ingestion (queue workers) and by
  search queries on ``local`` indices (web). ``EMBEDDING_PRELOAD`` (on when new indices embed
  locally) decides; processes that never embed locally leave it off and never import torch.

Who loads what, and when:

* a ``qcluster``: in its main process, before django-q2 forks the workers (they inherit the
  imported code and share its memory), the runtime (with the validators of the model answers'
  types, ~0.3 s) and the model's libraries, imports only
  (:func:`agentdeck.files.embeddings.local_model_import` says why); each worker then loads the
  model as it starts (``post_spawn``), before taking its first task;
* the web process (``config.asgi``, i.e. daphne): the runtime and the views before it listens
  (~1.5 s), the model in a background thread, so ``/healthz`` answers meanwhile; a search
  arriving before the model is ready waits for that one load, not for a second one;
* a run worker (``runs_worker``): the runtime, tracing and the model before its first claim;
* everything else (``dev_token``, ``migrate``, ``check``, the test suite) loads none of it.

Each load is logged with its time ("worker 4242: loading the embedding model all-MiniLM-L6-v2...
ready in 0.8 s"). Under ``manage.py serve`` each process also writes one line to the pipe named
by ``AGENTDECK_READY_FD`` once it has loaded everything, and serve says "up" only after that.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pkgutil
import threading
import time
from collections.abc import Callable
from typing import cast

from django.conf import settings

logger = logging.getLogger(__name__)

READY_FD_ENV = "AGENTDECK_READY_FD"


def _timed(who: str, what: str, load: Callable[[], object]) -> bool:
    """Run ``load``, logging what it loads and how long it took; False (logged) if it failed:
    a failed preload leaves the thing to load on first use, where its error reaches a user."""
    logger.info("%s: loading %s...", who, what)
    started = time.monotonic()
    try:
        load()
    except Exception:
        logger.exception("%s: could not load %s; it will be loaded on first use", who, what)
        return False
    logger.info("%s: %s ready in %.1f s", who, what, time.monotonic() - started)
    return True


def _import_runtime() -> None:
    """Every module a run may import: the whole runtime package (the Agents SDK, openai and the
    MCP client with it; most of it is imported inside functions, to keep import cycles out),
    span storage, the channel layer's backend, and the views (the services they import)."""
    from django.urls import get_resolver
    from django.utils.module_loading import import_string

    import agentdeck.agents.runtime

    package = agentdeck.agents.runtime
    for module in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
        importlib.import_module(module.name)
    importlib.import_module("agentdeck.analytics.tracing")
    import_string(cast(str, settings.CHANNEL_LAYERS["default"]["BACKEND"]))
    get_resolver().url_patterns  # noqa: B018 (evaluating it imports every view module)


def _prepare_runs() -> None:
    """:func:`_import_runtime`, then the validators of the openai types a model's streamed answer
    becomes (the Responses API's events; chat completions chunks, which the SDK turns into the
    same events). openai leaves them to be built on first use, which took ~0.5 s of each queue
    worker's first run; built before django-q2 forks, every worker inherits them."""
    import typing

    from openai.types.chat import ChatCompletionChunk
    from openai.types.responses import (
        Response,
        ResponseOutputMessage,
        ResponseOutputText,
        ResponseStreamEvent,
        ResponseUsage,
    )

    _import_runtime()
    events = typing.get_args(typing.get_args(ResponseStreamEvent)[0])  # Annotated[Union[...]]
    for model in (Response, ResponseOutputMessage, ResponseOutputText, ResponseUsage, *events):
        model.model_rebuild()
    ChatCompletionChunk.model_rebuild()


def _model_name() -> str:
    from agentdeck.files.embeddings import LOCAL_MODEL

    return f"the embedding model {LOCAL_MODEL}"


def report_ready(role: str) -> None:
    """Tell ``manage.py serve`` this process has loaded what it preloads (a no-op elsewhere).

    The pipe's write end is inherited by every process forked from the one serve started; a
    late writer (a worker django-q2 replaced after serve stopped reading) finds it closed."""
    fd = os.environ.get(READY_FD_ENV)
    if not fd:
        return
    with contextlib.suppress(OSError, ValueError):
        os.write(int(fd), f"{role} {os.getpid()}\n".encode())


def qcluster_main() -> None:
    """In a ``qcluster``'s main process, before it forks: imports only; then each worker loads
    the model when it starts."""
    from django_q.signals import post_spawn

    _timed("worker", "the agents runtime", _prepare_runs)
    if settings.EMBEDDING_PRELOAD:
        from agentdeck.files.embeddings import local_model_import

        _timed("worker", "torch and sentence-transformers", local_model_import)
    post_spawn.connect(_worker_started, dispatch_uid="agentdeck.preload.worker_started")


def _worker_started(sender: object, proc_name: str = "", **kwargs: object) -> None:
    """django-q2's ``post_spawn``, in each worker as it starts (after the fork). It must not
    raise: a worker that dies at start is replaced, and would die again."""
    from agentdeck.analytics.tracing import install_tracing

    who = f"worker {os.getpid()}"
    try:
        # The SDK's trace provider, with an HTTP client and its TLS context: 0.1 s of the
        # first run otherwise.
        install_tracing()
    except Exception:
        logger.exception("%s: could not set up tracing; the first run will", who)
    if settings.EMBEDDING_PRELOAD:
        from agentdeck.files.embeddings import local_model_load

        _timed(who, _model_name(), local_model_load)
    report_ready("worker")


def run_worker_process() -> None:
    """In a run worker (``manage.py runs_worker``), before it claims: the runtime and the model
    types' validators, the SDK's trace provider, and (``EMBEDDING_PRELOAD``) the local
    embedding model, which ``file_search`` calls of runs embed their queries with."""
    from agentdeck.analytics.tracing import install_tracing

    _timed("runs", "the agents runtime", _prepare_runs)
    try:
        install_tracing()
    except Exception:
        logger.exception("runs: could not set up tracing; the first run will")
    if settings.EMBEDDING_PRELOAD:
        from agentdeck.files.embeddings import local_model_load

        _timed("runs", _model_name(), local_model_load)


def web_process() -> None:
    """In the web process, before it listens: the runtime and the views; then the model in a
    background thread, so ``/healthz`` answers meanwhile."""
    _timed("web", "the agents runtime", _import_runtime)
    if not settings.EMBEDDING_PRELOAD:
        report_ready("web")
        return

    def load_model() -> None:
        from agentdeck.files.embeddings import local_model_load

        _timed("web", _model_name(), local_model_load)
        report_ready("web")

    threading.Thread(target=load_model, name="preload-embedding-model", daemon=True).start()
