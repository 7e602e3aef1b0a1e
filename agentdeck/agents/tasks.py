"""django-q2 entry points: primitive ids in, one service call, nothing else (convention 7).

Each task ends with :func:`~agentdeck.core.realtime.flush`: realtime messages leave from a
background thread, and django-q2 may end the worker process (``recycle``, a timeout, shutdown)
without running ``atexit``, which would lose what is still queued.
"""

from __future__ import annotations

from agentdeck.agents.services.runs import agent_run_execute, agent_run_reap_stale
from agentdeck.core import realtime


def execute_run(run_id: str) -> str:
    try:
        return agent_run_execute(run_id=run_id)
    finally:
        realtime.flush()


def reap_stale_runs() -> int:
    try:
        return len(agent_run_reap_stale())
    finally:
        realtime.flush()
