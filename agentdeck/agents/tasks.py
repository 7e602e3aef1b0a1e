"""django-q2 entry points: primitive ids in, one service call, nothing else (convention 7).

The realtime messages a task published are flushed after every task by
:func:`agentdeck.core.realtime.flush_after_task` (connected in ``CoreConfig.ready``).
"""

from __future__ import annotations

from agentdeck.agents.services.runs import agent_run_execute, agent_run_reap_stale


def execute_run(run_id: str) -> str:
    return agent_run_execute(run_id=run_id)


def reap_stale_runs() -> int:
    return len(agent_run_reap_stale())
