"""The message both layers send to every local channel once they are connected again after an
outage, so consumers catch up from the run-event log (agentdeck.agents.consumers)."""

from __future__ import annotations

from typing import Any

# The message every local channel gets once its layer is connected again after an outage.
# ``since`` is the time.time() at which the connection was found lost.
RECONNECTED = "channel_layer.reconnected"


def reconnected_message(since: float | None) -> dict[str, Any]:
    return {"type": RECONNECTED, "since": since}
