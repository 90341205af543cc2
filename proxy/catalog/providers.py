"""Provider kinds the gateway speaks to, and their default base URLs (each official SDK's)."""

from django.db import models


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Google Gemini"
    MISTRAL = "mistral", "Mistral"
    OPENAI_COMPATIBLE = "openai-compatible", "OpenAI-compatible"


# openai-compatible has no default: its credentials must name their server.
DEFAULT_BASE_URLS: dict[str, str] = {
    Provider.OPENAI: "https://api.openai.com/v1",
    Provider.ANTHROPIC: "https://api.anthropic.com",
    Provider.GEMINI: "https://generativelanguage.googleapis.com",
    Provider.MISTRAL: "https://api.mistral.ai",
}


def default_base_url(provider: str) -> str:
    return DEFAULT_BASE_URLS.get(provider, "")
