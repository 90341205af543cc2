"""Provider kinds the gateway speaks to, and their default base URLs (each official SDK's)."""

from django.db import models

from proxy.gateway.routing import ProviderKind


class Provider(models.TextChoices):
    OPENAI = ProviderKind.OPENAI.value, "OpenAI"
    ANTHROPIC = ProviderKind.ANTHROPIC.value, "Anthropic"
    GEMINI = ProviderKind.GEMINI.value, "Google Gemini"
    MISTRAL = ProviderKind.MISTRAL.value, "Mistral"
    OPENAI_COMPATIBLE = ProviderKind.OPENAI_COMPATIBLE.value, "OpenAI-compatible"


# openai-compatible has no default: its credentials must name their server.
DEFAULT_BASE_URLS: dict[str, str] = {
    Provider.OPENAI: "https://api.openai.com/v1",
    Provider.ANTHROPIC: "https://api.anthropic.com",
    Provider.GEMINI: "https://generativelanguage.googleapis.com",
    Provider.MISTRAL: "https://api.mistral.ai",
}


def default_base_url(provider: str) -> str:
    return DEFAULT_BASE_URLS.get(provider, "")
