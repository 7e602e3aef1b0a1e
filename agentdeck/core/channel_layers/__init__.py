"""The channel layers agentdeck runs on, made to survive their server restarting.

Both libraries lose their connections when PostgreSQL or Redis restarts, and neither recovers
all of it by itself:

* ``channels_postgres`` reads every message through one LISTEN connection, started as a
  fire-and-forget task. When PostgreSQL resets it the task dies ("Task exception was never
  retrieved") while its "listening" flag stays set, so no receive() in the process ever gets a
  message again and ``/readyz``'s round trip through the layer times out until the process is
  restarted. Its pool also hands out the dead connections once, failing a WebSocket's connect.
* ``channels_redis``'s Pub/Sub layer reconnects through redis-py, which re-subscribes what it
  had subscribed, but silently: nobody learns that messages were published meanwhile (Pub/Sub
  keeps nothing). A SUBSCRIBE that failed while Redis was down is never retried, and the
  receive loop logs a traceback every second of an outage.

The subclasses here keep the libraries' wire formats and tables, and add:

1. a supervised connection: on loss, reconnect with capped, jittered exponential backoff
   (agentdeck.core.reconnect), logged once per outage;
2. after reconnecting, everything the process's consumers still hold is restored: PostgreSQL
   re-LISTENs, re-inserts group memberships missing from its table and deletes those whose
   consumers left during the outage; Redis re-subscribes every group and channel held locally;
3. what was sent while the receive side was away is recovered where the server kept it
   (PostgreSQL keeps messages in ``channels_postgres_message`` until they expire: they are
   replayed, by id, without duplicates), and every local channel then gets a
   ``channel_layer.reconnected`` message, so consumers catch up from what they can trust (the
   run-event log; see agentdeck.agents.consumers for what each stream does with it).

``postgres`` (over ``postgres_db``) and ``redis_pubsub`` hold the two layers; settings name them
by their path here (``agentdeck.core.channel_layers.PostgresChannelLayer``).
"""

from __future__ import annotations

from agentdeck.core.channel_layers.postgres import PostgresChannelLayer
from agentdeck.core.channel_layers.reconnected import RECONNECTED, reconnected_message
from agentdeck.core.channel_layers.redis_pubsub import RedisPubSubChannelLayer

__all__ = [
    "RECONNECTED",
    "PostgresChannelLayer",
    "RedisPubSubChannelLayer",
    "reconnected_message",
]
