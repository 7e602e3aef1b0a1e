"""Staff oversight of agents, runs and providers, one module per model family. Writes go through
services; run events and versions are read-only; the provider key is write-only and shown masked.

Importing the modules registers their ModelAdmins (Django's autodiscover imports this package)."""

from agentdeck.agents.admin import agents, providers, runs, tools

__all__ = ["agents", "providers", "runs", "tools"]
