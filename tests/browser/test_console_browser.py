"""The console's key flows in a real browser: email sign-up with the mailed code, passkey
sign-up and sign-in (CDP virtual authenticator), and the Models page's htmx filter."""

import re
import uuid

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from playwright.sync_api import Page, expect

from accounts.models import User
from tests.accounts.conftest import PASSWORD, mail_code
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_landing_then_email_signup_with_the_mailed_code(page: Page, console_url: str) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Start in three steps")).to_be_visible()
    expect(page.locator("#qs-code-curl")).to_contain_text(f"{console_url}/v1/chat/completions")
    page.get_by_role("tab", name="Python").click()
    expect(page.locator("#qs-code-python")).to_be_visible()
    expect(page.locator("#qs-code-curl")).to_be_hidden()
    screenshot(page, "landing")

    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    page.get_by_role("link", name="Get started").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()

    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    page.get_by_label("Code").fill(mail_code(email))
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(f"{console_url}/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_text(f"Signed in as {email}", exact=True)).to_be_visible()
    assert EmailAddress.objects.get(user__email=email).verified
    screenshot(page, "dashboard")


def test_passkey_signup_sign_out_then_passkey_sign_in(page: Page, console_url: str) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    email = f"passkey-{uuid.uuid4().hex[:10]}@example.com"
    page.goto("/accounts/signup/passkey/")
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Sign Up").click()
    page.get_by_label("Code").fill(mail_code(email))
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_role("heading", name="Create Passkey")).to_be_visible()
    page.get_by_label("Name").fill("Test laptop")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    user = User.objects.get(email=email)
    assert not user.has_usable_password()  # a passkey-only account
    passkey = Authenticator.objects.get(user=user, type=Authenticator.Type.WEBAUTHN)
    assert passkey.wrap().name == "Test laptop"
    stored = cdp.send("WebAuthn.getCredentials", authenticator)["credentials"]
    assert len(stored) == 1
    assert stored[0]["isResidentCredential"]  # discoverable: sign-in needs no email

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Get started")).to_be_visible()
    page.goto("/settings/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/settings/$"))

    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(f"{console_url}/settings/")
    expect(page.get_by_text("Test laptop")).to_be_visible()


def test_models_page_filters_as_you_type(page: Page, console_url: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_url)
    page.goto("/models/")
    rows = page.locator("tr[data-model]")
    total = rows.count()
    assert total > 30
    screenshot(page, "models")

    page.get_by_label("Filter models").press_sequentially("sonnet 4.5", delay=30)
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-model", "Claude Sonnet 4.5")
    expect(page).to_have_url(re.compile(r"/models/\?q=sonnet(%20|\+)4\.5"))

    rows.first.get_by_role("button", name="Copy Claude Sonnet 4.5").click()
    expect(rows.first.get_by_role("button", name="Copy Claude Sonnet 4.5")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "Claude Sonnet 4.5"

    page.get_by_label("Filter models").fill("")
    page.get_by_label("Provider").select_option("mistral")
    expect(rows.first).to_have_attribute("data-model", re.compile(r"^(Codestral|Devstral|M|P)"))
    assert all(
        "Mistral" in text
        for text in page.locator("tr[data-model] .model-provider").all_inner_texts()
    )

    page.get_by_label("Filter models").fill("no such model at all")
    expect(page.get_by_text("No models match")).to_be_visible()
    expect(rows).to_have_count(0)
