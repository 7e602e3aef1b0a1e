from agentdeck.agents.models.agent import Agent, AgentMetadata, AgentVersion
from agentdeck.agents.models.conversation import Conversation, ConversationItem
from agentdeck.agents.models.provider import Provider
from agentdeck.agents.models.run import AgentRun, RunEvent
from agentdeck.agents.models.tool import AgentTool, Handoff, Tool, ToolCall

__all__ = [
    "Agent",
    "AgentMetadata",
    "AgentRun",
    "AgentTool",
    "AgentVersion",
    "Conversation",
    "ConversationItem",
    "Handoff",
    "Provider",
    "RunEvent",
    "Tool",
    "ToolCall",
]
