"""One adapter per provider kind; the gateway's core never branches on the provider."""

from proxy.gateway.errors import ServiceUnavailable
from proxy.gateway.routing import ProviderKind
from proxy.providers.anthropic.adapter import AnthropicAdapter
from proxy.providers.base import ProviderAdapter
from proxy.providers.gemini.adapter import GeminiAdapter
from proxy.providers.mistral import MistralAdapter
from proxy.providers.openai import OpenAIAdapter, OpenAICompatibleAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    ProviderKind.OPENAI: OpenAIAdapter(),
    ProviderKind.OPENAI_COMPATIBLE: OpenAICompatibleAdapter(),
    ProviderKind.MISTRAL: MistralAdapter(),
    ProviderKind.ANTHROPIC: AnthropicAdapter(),
    ProviderKind.GEMINI: GeminiAdapter(),
}


def adapter_for(provider: str) -> ProviderAdapter:
    adapter = ADAPTERS.get(provider)
    if adapter is None:
        raise ServiceUnavailable(
            f"The gateway cannot talk to {provider} models yet.", code="provider_unsupported"
        )
    return adapter
