"""Gateway admin adapters: the LiteLLM admin API, the LiteLLM config file (proxies without a
database), a generic HTTP action, a router combining them, and an in-memory gateway for tests."""

from gatewarden.gateways.http_action import HttpActionGateway
from gatewarden.gateways.litellm_admin import LiteLLMAdmin
from gatewarden.gateways.litellm_config import LiteLLMConfigFile
from gatewarden.gateways.memory import InMemoryGateway
from gatewarden.gateways.router import GatewayRouter

__all__ = [
    "GatewayRouter",
    "HttpActionGateway",
    "InMemoryGateway",
    "LiteLLMAdmin",
    "LiteLLMConfigFile",
]
