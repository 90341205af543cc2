"""allauth adapters: the few places where TokenByte's behaviour differs from allauth's."""

from typing import Any

from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.http import Http404, HttpRequest


class ProviderNotConfigured(Http404, SocialApp.DoesNotExist):
    """Still a SocialApp.DoesNotExist for allauth's callers, but a 404 page, not a 500."""


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def get_app(self, request: HttpRequest, provider: str, client_id: str | None = None) -> Any:
        try:
            return super().get_app(request, provider, client_id=client_id)
        except SocialApp.DoesNotExist as exc:
            raise ProviderNotConfigured(
                f"Sign-in with {provider} is not configured on this server."
            ) from exc
