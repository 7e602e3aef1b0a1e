"""Runs: start, claim, execute, record events and tool calls, approvals, cancel, reap. The state
machine is documented on ``AgentRun``; each module holds one step of it:

``start``       a run is checked, inserted ``queued`` with its credit hold, and announced
``queue``       the run workers are woken, claim runs and keep their heartbeat
``execution``   a claimed run begins, runs the SDK, and settles (``agent_run_finish``)
``events``      the per-run event log, published after commit; the run status notice
``tool_calls``  the calls a run makes, as its worker reports them
``approvals``   a run paused for a person's answer, and its resumption
``cancel``      an owner's cancel; ``reaping``: runs whose worker or approver is gone

Callers import from here (``from agentdeck.agents.services.runs import agent_run_start``).
"""

# Not a service: benchmarks/ws_fanout.py imports it from here (it lives in runtime.sink).
from agentdeck.agents.runtime.sink import RunOutcome
from agentdeck.agents.services.runs.approvals import agent_run_approve, agent_run_pause
from agentdeck.agents.services.runs.cancel import agent_run_cancel
from agentdeck.agents.services.runs.events import (
    run_event_append,
    run_events_append,
    run_events_append_many,
    run_status_publish,
)
from agentdeck.agents.services.runs.execution import (
    agent_run_begin,
    agent_run_execute,
    agent_run_finish,
    agent_run_settle,
    agent_runs_begin,
)
from agentdeck.agents.services.runs.queue import (
    RUN_CLAIM_LOCK,
    RUN_QUEUE_CHANNEL,
    agent_run_claim,
    agent_runs_claim,
    agent_runs_heartbeat,
    agent_runs_held,
    run_queue_notify,
    worker_name,
)
from agentdeck.agents.services.runs.reaping import agent_run_reap_stale
from agentdeck.agents.services.runs.start import agent_run_start, request_fingerprint
from agentdeck.agents.services.runs.tool_calls import (
    TOOL_OUTPUT_MAX_CHARS,
    tool_call_finished,
    tool_call_started,
)

__all__ = [
    "RUN_CLAIM_LOCK",
    "RUN_QUEUE_CHANNEL",
    "TOOL_OUTPUT_MAX_CHARS",
    "RunOutcome",
    "agent_run_approve",
    "agent_run_begin",
    "agent_run_cancel",
    "agent_run_claim",
    "agent_run_execute",
    "agent_run_finish",
    "agent_run_pause",
    "agent_run_reap_stale",
    "agent_run_settle",
    "agent_run_start",
    "agent_runs_begin",
    "agent_runs_claim",
    "agent_runs_heartbeat",
    "agent_runs_held",
    "request_fingerprint",
    "run_event_append",
    "run_events_append",
    "run_events_append_many",
    "run_queue_notify",
    "run_status_publish",
    "tool_call_finished",
    "tool_call_started",
    "worker_name",
]
