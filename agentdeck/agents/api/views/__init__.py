"""The agents domain's HTTP views, one module per resource (URLs in agentdeck.agents.urls)."""
