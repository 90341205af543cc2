"""Reads for the console pages: the public catalog and a user's sign-in methods."""

from dataclasses import dataclass

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount

from accounts.models import User
from proxy.models import ModelCard, ModelType
from proxy.providers import Provider

# The model the landing page's snippets call when the catalog has it.
PREFERRED_EXAMPLE_MODELS = ("Claude Sonnet 4.5", "GPT-4o", "Gemini 2.5 Flash")


def model_card_list(*, query: str = "", provider: str = "") -> list[ModelCard]:
    """Active cards matching every word of `query` (title, upstream id, aliases, provider)."""
    cards = ModelCard.objects.filter(active=True).order_by("provider", "title")
    if provider:
        cards = cards.filter(provider=provider)
    words = query.lower().split()
    if not words:
        return list(cards)
    # The catalog is a few hundred rows at most: matching aliases (JSON) in Python is simplest.
    return [
        card
        for card in cards
        if all(
            word in " ".join((*card.names(), card.provider, card.get_provider_display())).lower()
            for word in words
        )
    ]


def model_providers_in_catalog() -> list[tuple[str, str]]:
    """(value, label) of the providers that have at least one active card."""
    present = set(ModelCard.objects.filter(active=True).values_list("provider", flat=True))
    return [(value, label) for value, label in Provider.choices if value in present]


@dataclass(frozen=True)
class CatalogSummary:
    count: int
    providers: list[tuple[str, str]]


def catalog_summary() -> CatalogSummary:
    return CatalogSummary(
        count=ModelCard.objects.filter(active=True).count(),
        providers=model_providers_in_catalog(),
    )


def example_model_title() -> str:
    titles = set(
        ModelCard.objects.filter(active=True, type=ModelType.CHAT).values_list("title", flat=True)
    )
    for title in PREFERRED_EXAMPLE_MODELS:
        if title in titles:
            return title
    return min(titles) if titles else "Claude Sonnet 4.5"


@dataclass(frozen=True)
class SignInMethods:
    emails: list[EmailAddress]
    has_password: bool
    has_totp: bool
    recovery_codes_left: int | None
    passkeys: list[Authenticator]
    social_accounts: list[SocialAccount]

    @property
    def has_verified_email(self) -> bool:
        return any(address.verified for address in self.emails)

    @property
    def two_factor_enabled(self) -> bool:
        return self.has_totp or bool(self.passkeys)


def user_sign_in_methods(*, user: User) -> SignInMethods:
    authenticators = list(Authenticator.objects.filter(user=user))
    recovery = next(
        (a for a in authenticators if a.type == Authenticator.Type.RECOVERY_CODES), None
    )
    return SignInMethods(
        emails=list(EmailAddress.objects.filter(user=user).order_by("-primary", "email")),
        has_password=user.has_usable_password(),
        has_totp=any(a.type == Authenticator.Type.TOTP for a in authenticators),
        recovery_codes_left=(
            len(recovery.wrap().get_unused_codes()) if recovery is not None else None
        ),
        passkeys=[a for a in authenticators if a.type == Authenticator.Type.WEBAUTHN],
        social_accounts=list(SocialAccount.objects.filter(user=user).order_by("provider")),
    )
