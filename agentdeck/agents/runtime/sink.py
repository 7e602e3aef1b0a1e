"""What the runtime reports to, and what it returns: the one-way boundary of the run path.

The run path reads one way: view -> service -> queue -> worker -> runtime -> sink. The runtime
(graph building, execution, event mapping) imports no services; it writes a run's events, tool
calls and heartbeats through a :class:`RunSink` it is given, which the runs service implements
(``agentdeck.agents.services.run_sink``) and tests may replace. It hands back a
:class:`RunOutcome`, which the service settles.

Every sink method is synchronous ORM work; the executor calls it through
``agentdeck.core.db_threads.run_db`` (on the caller's thread, or the worker's database threads).
A sink may also offer ``async append_async(run_id, batch)``, which the executor then awaits
instead of ``append``: the run worker's sink writes the events of concurrent runs together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from agentdeck.agents.models import AgentRun


@dataclass(frozen=True)
class AppendResult:
    """The log after a write: the last seq written, and the run's status and cancel flag as the
    same statement saw them (how a worker notices cancellation between events)."""

    seq: int
    status: str
    cancel_requested: bool


@dataclass
class RunOutcome:
    status: str
    output: Any = None
    last_agent: str = ""
    usage: dict[str, dict[str, int]] | None = None
    error_code: str = ""
    error_message: str = ""
    # requires_action only: the SDK RunState to resume from and the calls awaiting a person.
    resume_state: str = ""
    pending_approvals: list[dict[str, Any]] | None = None


# An event on its way to the log: (type, data, first_token, companion write or None). The
# companion (a tool call's row) is written in the same transaction as its event.
QueuedEvent = tuple[str, dict[str, Any], bool, Callable[[], None] | None]


class Budget(Protocol):
    """A run's spending cap (its credit hold): ``amount`` in credits and what usage costs."""

    @property
    def amount(self) -> int: ...  # read-only: the service's budget is a frozen dataclass

    def cost(self, usage: dict[str, dict[str, int]]) -> int: ...


class RunSink(Protocol):
    def append(self, run_id: UUID, batch: Sequence[QueuedEvent]) -> AppendResult:
        """Write ``batch`` at the run's next seqs, in order, with the companion writes."""

    def append_again(
        self, run_id: UUID, batch: Sequence[QueuedEvent], last_seq: int | None
    ) -> AppendResult:
        """After ``append`` failed with its connection (perhaps after its commit): write the
        batch unless the log has it already. ``last_seq``: the seq of this worker's last write
        of the run, None before its first."""

    def tool_call_started(
        self,
        *,
        run_id: UUID,
        call_id: str,
        tool_name: str,
        agent_name: str,
        arguments: Any,
        tool_id: str | None,
    ) -> None: ...

    def tool_call_finished(
        self, *, run_id: UUID, call_id: str, output: Any, duration_ms: float | None
    ) -> None: ...

    def budget(self, run: AgentRun) -> Budget | None:
        """The run's spending cap, None without one."""

    def beat(self, run_id: UUID) -> bool | None:
        """Refresh the run's heartbeat. None: the run is no longer running (reaped or settled
        elsewhere); otherwise whether a cancel is pending."""


@dataclass
class RunControl:
    """How a worker steers a run it executes: ``cancel`` set stops the run (cancelled, or no
    longer ``running`` under it: settling then changes nothing). ``beats``: whether the
    worker refreshes the run's heartbeat itself (one statement for all its runs); without it
    the executor beats for its one run."""

    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    beats: bool = False
    # Set by a worker that stops its runs to shut down (they end failed, worker_shutdown).
    shutdown: bool = False

    def stop(self) -> None:
        self.cancel.set()
