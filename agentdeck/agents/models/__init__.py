from agentdeck.agents.models.agent import Agent, AgentMetadata, AgentVersion
from agentdeck.agents.models.conversation import Conversation, ConversationItem
from agentdeck.agents.models.provider import Provider
from agentdeck.agents.models.run import AgentRun, RunEvent

__all__ = [
    "Agent",
    "AgentMetadata",
    "AgentRun",
    "AgentVersion",
    "Conversation",
    "ConversationItem",
    "Provider",
    "RunEvent",
]
