"""Gateway admin adapters: LiteLLM proxy over HTTP, and an in-memory gateway for tests."""

from gatewarden.gateways.litellm_admin import LiteLLMAdmin
from gatewarden.gateways.memory import InMemoryGateway

__all__ = ["InMemoryGateway", "LiteLLMAdmin"]
