"""Reads for the console pages: the public catalog, a user's sign-in methods and the
dashboard's getting-started checklist."""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince

from accounts.models import User
from keys.selectors import KeysUsage, keys_usage
from proxy.catalog.providers import Provider
from proxy.models import ModelCard, ModelType

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


@dataclass(frozen=True)
class ChecklistStep:
    title: str
    text: str
    done: bool
    action_label: str = ""  # offered only while the step is not done
    action_url: str = ""
    primary: bool = False  # the one step to do next


class Activity(StrEnum):
    """What the dashboard's activity card can truthfully say."""

    NO_KEYS = "no_keys"  # never made a key
    NO_ACTIVE_KEYS = "no_active_keys"  # every key is revoked or expired
    UNUSED = "unused"  # usable keys, no request yet
    USED = "used"


@dataclass(frozen=True)
class GettingStarted:
    steps: list[ChecklistStep]
    keys: KeysUsage
    activity: Activity

    @property
    def done_count(self) -> int:
        return sum(step.done for step in self.steps)

    @property
    def complete(self) -> bool:
        return all(step.done for step in self.steps)


def _activity(keys: KeysUsage) -> Activity:
    if keys.last_used_at is not None:
        return Activity.USED
    if keys.total == 0:
        return Activity.NO_KEYS
    return Activity.UNUSED if keys.active else Activity.NO_ACTIVE_KEYS


def user_getting_started(
    *, user: User, methods: SignInMethods, now: datetime | None = None
) -> GettingStarted:
    """The dashboard's checklist, from what the project records: a verified email, a usable
    key, a request through any of the user's keys (its last-used time), and a second factor."""
    now = now or timezone.now()
    keys = keys_usage(owner=user, now=now)
    has_key = keys.active > 0
    used = keys.last_used_at is not None
    if has_key:
        key_text = f"You have {keys.active} active key{'s' if keys.active != 1 else ''}."
    elif keys.total:
        key_text = "Your keys are all revoked or expired: create a new one to call the API."
    else:
        key_text = "Name it after the app that will use it; limits are optional."
    if used:
        assert keys.last_used_at is not None  # noqa: S101 -- narrows the type; `used` says so
        request_text = f"Your keys last served a request {timesince(keys.last_used_at, now)} ago."
    else:
        request_text = (
            "Any OpenAI SDK works: only the base URL and the key change. "
            "This ticks within a minute of your first call."
        )
    steps = [
        ChecklistStep(
            title="Verify your email",
            text="We send receipts and security notices there.",
            done=methods.has_verified_email,
            action_label="Verify",
            action_url=reverse("account_email"),
        ),
        ChecklistStep(
            title="Create an API key",
            text=key_text,
            done=has_key,
            action_label="Create key",
            action_url=reverse("keys:new"),
        ),
        ChecklistStep(
            title="Send your first request",
            text=request_text,
            done=used,
            # The snippets sit beside the checklist; they need a key first.
            action_label="See the snippets" if has_key else "",
            action_url="#quickstart" if has_key else "",
        ),
        ChecklistStep(
            title="Protect your account",
            text=(
                "Two-factor authentication is on."
                if methods.two_factor_enabled
                else "Add a passkey or an authenticator app."
            ),
            done=methods.two_factor_enabled,
            action_label="Set up 2FA",
            action_url=reverse("mfa_index"),
        ),
    ]
    first_open = next((index for index, step in enumerate(steps) if not step.done), None)
    if first_open is not None and steps[first_open].action_url:
        steps[first_open] = replace(steps[first_open], primary=True)
    return GettingStarted(steps=steps, keys=keys, activity=_activity(keys))
