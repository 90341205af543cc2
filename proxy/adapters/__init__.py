"""One adapter per provider kind; the gateway's core never branches on the provider."""

from proxy.adapters.anthropic import AnthropicAdapter
from proxy.adapters.base import ProviderAdapter
from proxy.adapters.gemini import GeminiAdapter
from proxy.adapters.mistral import MistralAdapter
from proxy.adapters.openai import OpenAIAdapter, OpenAICompatibleAdapter
from proxy.errors import ServiceUnavailable
from proxy.providers import Provider

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
