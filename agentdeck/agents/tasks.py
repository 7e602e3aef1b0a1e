"""django-q2 entry points: primitive ids in, one service call, nothing else (convention 7).

The realtime messages a task published are flushed after every task by
:func:`agentdeck.core.realtime.flush_after_task` (connected in ``CoreConfig.ready``).
"""

from __future__ import annotations

from agentdeck.agents.services.runs import agent_run_execute, agent_run_reap_stale


def execute_run(run_id: str) -> str:
    """One run, on the caller's thread and a loop of its own. Runs are executed by the run
    workers (``manage.py runs_worker``), which claim them from ``agent_runs``; nothing puts this
    task on the queue any more. It stays for tests and operators (``manage.py shell``), and for a
    task enqueued by a version before the run workers, which finds its run claimed or runs it
    once (claims are conditional)."""
    return agent_run_execute(run_id=run_id)


def reap_stale_runs() -> int:
    return len(agent_run_reap_stale())
