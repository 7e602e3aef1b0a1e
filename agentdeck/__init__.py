"""agentdeck: the operations backend of an AI-agent platform."""
