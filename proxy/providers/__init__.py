"""One adapter per provider kind; the gateway's core never branches on the provider."""

from proxy.catalog.providers import Provider
from proxy.gateway.errors import ServiceUnavailable
from proxy.providers.anthropic.adapter import AnthropicAdapter
from proxy.providers.base import ProviderAdapter
from proxy.providers.gemini.adapter import GeminiAdapter
from proxy.providers.mistral import MistralAdapter
from proxy.providers.openai import OpenAIAdapter, OpenAICompatibleAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    Provider.OPENAI: OpenAIAdapter(),
    Provider.OPENAI_COMPATIBLE: OpenAICompatibleAdapter(),
    Provider.MISTRAL: MistralAdapter(),
    Provider.ANTHROPIC: AnthropicAdapter(),
    Provider.GEMINI: GeminiAdapter(),
}


def adapter_for(provider: str) -> ProviderAdapter:
    adapter = ADAPTERS.get(provider)
    if adapter is None:
        raise ServiceUnavailable(
            f"The gateway cannot talk to {provider} models yet.", code="provider_unsupported"
        )
    return adapter
